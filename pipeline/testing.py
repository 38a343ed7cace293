"""A tiny, randomly initialised SDXL-architecture pipeline, built offline, for tests and demos.

It has every part real SDXL has (a UNet with text_time conditioning, a VAE with scale factor 8,
two CLIP text encoders and two tokenizers) at about a million parameters, so the training and
illustration code runs unchanged on a CPU in seconds. It draws noise, not pictures: it is a test
and demo model, never a substitute for SDXL.

    python -m pipeline tiny-model /tmp/tiny
    TALEWEAVER_BASE_MODEL=/tmp/tiny TALEWEAVER_RESOLUTION=128 python app.py
"""
from __future__ import annotations

from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


def byte_level_vocab() -> dict[str, int]:
    """The 256 byte-level characters, their end-of-word forms, then the start and end tokens.

    With no merges every character is its own token, so any text (emoji included) encodes.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}


def build_tokenizer(pad_token: str = EOS):
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], pad_token=pad_token,
                         model_max_length=MAX_LENGTH)


def build_tiny_pipeline(seed: int = 0, channels: tuple[int, int] = (32, 64)):
    """A random StableDiffusionXLPipeline; the same seed always gives the same weights.

    `channels` are the UNet's block widths: the default is the tiny test model; wider blocks
    make a larger random model for timing (bench/).
    """
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    vocab_size = len(byte_level_vocab())
    text_kwargs = dict(vocab_size=vocab_size, num_hidden_layers=2, num_attention_heads=4,
                       max_position_embeddings=MAX_LENGTH, bos_token_id=vocab_size - 2,
                       eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    time_embed_dim, projection_dim = 8, 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37,
                                                    **text_kwargs))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=64, intermediate_size=74, projection_dim=projection_dim, **text_kwargs))
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=channels,
            layers_per_block=1,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            norm_num_groups=32,
            cross_attention_dim=32 + 64,
            addition_embed_type="text_time",
            addition_time_embed_dim=time_embed_dim,
            projection_class_embeddings_input_dim=6 * time_embed_dim + projection_dim,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 8, 16, 16),
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
            scaling_factor=0.13025,
        )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", prediction_type="epsilon",
                                       timestep_spacing="leading", steps_offset=1)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=build_tokenizer(),
        tokenizer_2=build_tokenizer(pad_token="!"),
        unet=unet,
        scheduler=scheduler,
    )


def save_tiny_model(out_dir: str | Path, seed: int = 0,
                    channels: tuple[int, int] = (32, 64)) -> Path:
    """Build the tiny pipeline and save it as a diffusers folder that models.py loads."""
    out = Path(out_dir)
    build_tiny_pipeline(seed, channels).save_pretrained(out)
    return out


def save_tiny_upscaler(out_dir: str | Path, seed: int = 0, scale: int = 2) -> Path:
    """A tiny random Swin2SR super-resolution model (x`scale`), saved as a folder that
    TALEWEAVER_UPSCALER loads: it enlarges pictures (into noise), for tests and benchmarks."""
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    out = Path(out_dir)
    config = Swin2SRConfig(embed_dim=12, depths=[1], num_heads=[2], window_size=4,
                           mlp_ratio=1.0, upscale=scale, drop_path_rate=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        Swin2SRForImageSuperResolution(config).save_pretrained(out)
    return out
