"""Loading the SDXL base pipeline (a Hub id or a local folder, once per process), and
encoding prompts for it without CLIP's 77-token cut.

The real model (stabilityai/stable-diffusion-xl-base-1.0) and the tiny test model built by
pipeline/testing.py load through the same `load_pipeline`, so tests exercise production code.

The cached pipeline is shared by every thread of the process (the app's users): whoever changes
it (adapters, training layers) or runs it holds `pipeline_lock()` meanwhile, since a diffusers
pipeline isn't safe to use from two threads at once.
"""
from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

from .hardware import Hardware, detect
from .settings import Settings
from .store import remove_tree, staged_dir

DEMO_MODEL_DIR = "demo-model"
DEMO_SAFETY_DIR = "safety-classifier"  # in a tiny model's folder: its safety classifier



class ModelUnavailableError(RuntimeError):
    """The base model (or VAE) can't be loaded here; the message names the setting to change."""


_cache: dict[tuple[str, str, str, str], Any] = {}
_cache_lock = threading.Lock()  # guards _cache (held while a pipeline loads)
_pipeline_lock = threading.RLock()  # turns at using or changing a cached pipeline


def _fresh_locks_after_fork() -> None:
    """A ZeroGPU call runs in a forked worker: a lock some other parent thread held at the
    fork would stay locked there forever (that thread isn't in the child), so it gets new ones."""
    global _cache_lock, _pipeline_lock
    _cache_lock = threading.Lock()
    _pipeline_lock = threading.RLock()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


class PipelineInUseError(RuntimeError):
    """The shared pipeline holds LoRA adapters (a book being illustrated in this process), so
    work that needs the bare base model (training, class images) can't start now."""


def pipeline_lock() -> threading.RLock:
    """The process-wide lock for the cached pipelines: hold it (`with pipeline_lock():`) while
    changing or running one. Re-entrant; call this each time, as a forked worker gets a new one."""
    return _pipeline_lock


def load_pipeline(settings: Settings, hardware: Hardware | None = None):
    """The StableDiffusionXLPipeline for these settings, on the chosen device and dtype.

    One instance per (model, VAE, device, dtype) lives for the whole process; callers that
    change it (LoRA adapters) must leave it as they found it.
    """
    hardware = hardware or detect(settings)
    vae = vae_source(settings, hardware)
    key = (settings.base_model, vae, hardware.device, hardware.dtype)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load(settings.base_model, vae, hardware)
        return _cache[key]


def vae_source(settings: Settings, hardware: Hardware) -> str:
    """The separate VAE to use, or "" for the base model's own.

    SDXL's own VAE overflows to NaN in float16, which is what the fp16-fix VAE is for; in
    bfloat16 and float32 the base model's VAE is exact, so the extra download is skipped.
    """
    return settings.vae if hardware.dtype == "float16" else ""


def load_quantized_pipeline(settings: Settings, hardware: Hardware, bits: int):
    """A fresh, uncached pipeline whose UNet is stored in 8 or 4 bits by bitsandbytes (CUDA only).

    For training a LoRA on a small GPU: the frozen base UNet takes about a half (8-bit) or a
    quarter (4-bit, NF4) of its bf16 memory while the adapter trains in full precision.
    """
    from diffusers import BitsAndBytesConfig, UNet2DConditionModel

    if bits == 8:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    elif bits == 4:
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=hardware.torch_dtype)
    else:
        raise ValueError(f"bits={bits}: quantization supports 8 or 4 bits")
    unet = _from_pretrained(UNet2DConditionModel, settings.base_model, "TALEWEAVER_BASE_MODEL",
                            hardware.torch_dtype, subfolder="unet", quantization_config=quantization)
    return _load(settings.base_model, vae_source(settings, hardware), hardware, unet=unet)


def is_loaded(settings: Settings, hardware: Hardware | None = None) -> bool:
    """Whether `load_pipeline` would answer at once (this process has loaded the pipeline)."""
    hardware = hardware or detect(settings)
    return (settings.base_model, vae_source(settings, hardware), hardware.device,
            hardware.dtype) in _cache


def demo_model(settings: Settings) -> Path:
    """The tiny test model (pipeline/testing.py) for demo mode, built once into
    <data_dir>/demo-model under a temporary name, so a half-built one is never used; its
    DEMO_SAFETY_DIR folder holds a tiny picture safety classifier that passes every picture
    (the tiny model draws noise)."""
    from .testing import save_tiny_model, save_tiny_safety_model

    folder = settings.data_dir / DEMO_MODEL_DIR
    with _cache_lock:
        if not (folder / "model_index.json").is_file() or not (folder / DEMO_SAFETY_DIR).is_dir():
            remove_tree(folder)  # what an older, interrupted build left
            with staged_dir(folder) as building:
                save_tiny_model(building)
                save_tiny_safety_model(building / DEMO_SAFETY_DIR)
    return folder


def encode_long_prompt(pipe, prompt: str, negative: str) -> dict:
    """SDXL prompt embeddings without CLIP's 77-token cut: the text is encoded in 75-token
    windows and joined, so a long page can't push the style's words out of the prompt.

    A prompt that fits one window gives exactly what `pipe.encode_prompt` gives.
    """
    import torch

    encoders = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    ids = {(text, i): tokenizer(text, add_special_tokens=False, verbose=False).input_ids
           for text in (prompt, negative) for i, (tokenizer, _) in enumerate(encoders)}
    window = min(tokenizer.model_max_length for tokenizer, _ in encoders) - 2
    windows = max(1, *(math.ceil(len(v) / window) for v in ids.values()))
    result = {}
    with torch.no_grad():
        for text, key in ((prompt, ""), (negative, "negative_")):
            hidden, pooled = [], None
            for i, (tokenizer, encoder) in enumerate(encoders):
                tokens = ids[(text, i)]
                states = []
                for start in range(0, windows * window, window):
                    piece = tokens[start:start + window]
                    row = [tokenizer.bos_token_id, *piece, tokenizer.eos_token_id]
                    row += [tokenizer.pad_token_id] * (window + 2 - len(row))
                    output = encoder(torch.tensor([row], device=encoder.device),
                                     output_hidden_states=True)
                    states.append(output.hidden_states[-2])
                    if pooled is None and output[0].ndim == 2:
                        pooled = output[0]  # the last encoder's projection, first window
                hidden.append(torch.cat(states, dim=1))
            result[f"{key}prompt_embeds"] = torch.cat(hidden, dim=-1)
            result[f"{key}pooled_prompt_embeds"] = pooled
    return result


def clear_cache() -> None:
    """Forget every loaded pipeline (tests that change the model, or freeing memory)."""
    with _cache_lock:
        _cache.clear()


def _load(base_model: str, vae: str, hardware: Hardware, **extra):
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline

    dtype = hardware.torch_dtype
    if vae:
        extra["vae"] = _from_pretrained(AutoencoderKL, vae, "TALEWEAVER_VAE", dtype)
    pipe = _from_pretrained(StableDiffusionXLPipeline, base_model, "TALEWEAVER_BASE_MODEL",
                            dtype, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(hardware.device)


def _from_pretrained(cls, source: str, setting: str, dtype, **kwargs):
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise ModelUnavailableError(f"{setting}={source}: no such folder")
    try:
        return cls.from_pretrained(str(Path(source).expanduser()) if looks_local else source,
                                   dtype=dtype, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(
            f"{setting}={source} could not be loaded: it is neither a complete local folder nor "
            "in the Hugging Face cache, and the Hub is not reachable (offline, or HF_HUB_OFFLINE=1). "
            f"Download it once while online, or set {setting} to a local folder. ({err})"
        ) from err
