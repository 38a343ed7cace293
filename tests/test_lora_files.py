import re

import numpy as np
import pytest
import torch
from conftest import assert_same_pipeline, pipeline_snapshot
from safetensors import safe_open
from safetensors.torch import load_file

from pipeline import models
from pipeline.adapter_files import ADAPTER_WEIGHTS, KOHYA_WEIGHTS
from pipeline.training.config import TrainConfig
from pipeline.training.lora_files import (kohya_state_dict, load_lora_state, lora_layers,
                                          lora_state_dict, save_adapter, trainable_parameters)

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = TrainConfig(rank=4, alpha=8, train_text_encoder=True)  # alpha != rank on purpose


def render(pipe) -> np.ndarray:
    return pipe("a photo of ohwx girl", num_inference_steps=2, height=64, width=64,
                generator=torch.Generator().manual_seed(3), output_type="np").images[0]


def randomise(modules) -> None:
    """Give the fresh LoRA layers (whose B matrices start at zero) values that change outputs."""
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for param in trainable_parameters(modules):
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def unet_output(pipe) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    embeds, _, pooled, _ = pipe.encode_prompt("ohwx girl", device="cpu",
                                              do_classifier_free_guidance=False)
    time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])
    with torch.no_grad():
        return pipe.unet(latents, torch.tensor([500]), encoder_hidden_states=embeds,
                         added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample


@pytest.fixture
def second_pipeline(tiny_model_dir):
    """An independent copy of the tiny pipeline (not the shared, cached one)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_cached_pipeline_is_left_exactly_as_found(settings):
    pipe = models.load_pipeline(settings)
    image = render(pipe)  # first: transformers marks its output hooks on a first forward pass
    before = pipeline_snapshot(pipe)
    with lora_layers(pipe, CONFIG, gradient_checkpointing=True) as modules:
        assert set(modules) == {"unet", "text_encoder", "text_encoder_2"}
        params = trainable_parameters(modules)
        assert params and all(p.dtype == torch.float32 for p in params)
        assert all("lora" in n for m in modules.values() for n, p in m.named_parameters()
                   if p.requires_grad)
        assert pipe.unet.is_gradient_checkpointing
        randomise(modules)
        assert not np.array_equal(render(pipe), image)
    assert_same_pipeline(before, pipeline_snapshot(pipe))
    assert np.array_equal(render(pipe), image)
    assert not pipe.unet.is_gradient_checkpointing


def test_pipeline_is_restored_when_training_fails(settings):
    pipe = models.load_pipeline(settings)
    render(pipe)
    before = pipeline_snapshot(pipe)
    with pytest.raises(RuntimeError, match="boom"):
        with lora_layers(pipe, CONFIG, gradient_checkpointing=False):
            raise RuntimeError("boom")
    assert_same_pipeline(before, pipeline_snapshot(pipe))


def test_refuses_a_pipeline_with_adapters_still_loaded(second_pipeline, tmp_path):
    with lora_layers(second_pipeline, TrainConfig(rank=2), gradient_checkpointing=False) as modules:
        save_adapter(tmp_path, modules, TrainConfig(rank=2))
    second_pipeline.load_lora_weights(str(tmp_path), weight_name=ADAPTER_WEIGHTS, adapter_name="x")
    with pytest.raises(RuntimeError, match="has LoRA adapters in use"):
        with lora_layers(second_pipeline, CONFIG, gradient_checkpointing=False):
            pass


def test_same_seed_same_initial_layers(second_pipeline):
    states = []
    for _ in range(2):
        with lora_layers(second_pipeline, CONFIG, gradient_checkpointing=False) as modules:
            states.append(lora_state_dict(modules))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_state_round_trips_and_must_fit(second_pipeline):
    with lora_layers(second_pipeline, CONFIG, gradient_checkpointing=False) as modules:
        randomise(modules)
        saved, expected = lora_state_dict(modules), unet_output(second_pipeline)
    with lora_layers(second_pipeline, CONFIG, gradient_checkpointing=False) as modules:
        load_lora_state(modules, saved)
        assert torch.equal(unet_output(second_pipeline), expected)
        with pytest.raises(ValueError, match="don't fit"):
            load_lora_state(modules, {k: v for k, v in saved.items() if "text_encoder" not in k})


def test_saved_adapter_reloads_exactly_with_diffusers(settings, second_pipeline, tmp_path):
    pipe = models.load_pipeline(settings)
    with lora_layers(pipe, CONFIG, gradient_checkpointing=False) as modules:
        randomise(modules)
        save_adapter(tmp_path, modules, CONFIG)
        trained, trained_image = unet_output(pipe), render(pipe)
    base = unet_output(second_pipeline)
    second_pipeline.load_lora_weights(str(tmp_path), weight_name=ADAPTER_WEIGHTS, adapter_name="mia")
    assert not torch.equal(trained, base)
    assert torch.equal(unet_output(second_pipeline), trained)
    assert np.array_equal(render(second_pipeline), trained_image)


def test_kohya_file_has_kohya_keys_and_true_alphas(second_pipeline, tmp_path):
    with lora_layers(second_pipeline, CONFIG, gradient_checkpointing=False) as modules:
        randomise(modules)
        save_adapter(tmp_path, modules, CONFIG)
        peft_state = lora_state_dict(modules)
    kohya = load_file(str(tmp_path / KOHYA_WEIGHTS))
    pattern = re.compile(r"lora_(unet|te1|te2)_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)")
    assert all(pattern.fullmatch(key) for key in kohya), [k for k in kohya if not pattern.fullmatch(k)]
    q = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    assert {f"{q}.lora_down.weight", f"{q}.lora_up.weight", f"{q}.alpha"} <= set(kohya)
    assert "lora_unet_up_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0.alpha" in kohya
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in kohya
    assert "lora_te2_text_model_encoder_layers_1_self_attn_out_proj.lora_up.weight" in kohya
    assert all(v.item() == 8.0 for k, v in kohya.items() if k.endswith(".alpha"))
    peft_key = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    assert torch.equal(kohya[f"{q}.lora_down.weight"], peft_state[f"{peft_key}.lora_A.weight"])
    assert torch.equal(kohya[f"{q}.lora_up.weight"], peft_state[f"{peft_key}.lora_B.weight"])
    with safe_open(str(tmp_path / KOHYA_WEIGHTS), framework="pt") as handle:
        assert handle.metadata()["ss_network_alpha"] == "8"


def test_kohya_file_loads_back_into_diffusers_with_the_same_effect(second_pipeline, tmp_path):
    config = TrainConfig(rank=4, alpha=2)
    with lora_layers(second_pipeline, config, gradient_checkpointing=False) as modules:
        randomise(modules)
        save_adapter(tmp_path, modules, config)
        trained = unet_output(second_pipeline)
    second_pipeline.load_lora_weights(str(tmp_path), weight_name=KOHYA_WEIGHTS, adapter_name="k")
    torch.testing.assert_close(unet_output(second_pipeline), trained, rtol=1e-4, atol=1e-5)


def test_kohya_alpha_overrides_diffusers_rank_default():
    state = {"unet.a.to_q.lora_A.weight": torch.zeros(4, 8), "unet.a.to_q.lora_B.weight": torch.zeros(8, 4)}
    kohya = kohya_state_dict(state, alpha=16)
    assert kohya["lora_unet_a_to_q.alpha"].item() == 16.0
