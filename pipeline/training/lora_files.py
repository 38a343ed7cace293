"""LoRA layers on the shared SDXL pipeline while it trains, and the adapter files it leaves behind.

Training borrows the one pipeline per process that illustration also uses (on ZeroGPU it already
sits on the GPU; a second SDXL UNet would cost 5 GB and a load per chunk). `lora_layers` adds the
trainable layers and, whatever happens, takes them off again and restores every flag it touched,
so the pipeline is left exactly as it was found; train.py holds models.pipeline_lock() meanwhile.

Files written (names from characters.py, the layout hub.py pushes):
    pytorch_lora_weights.safetensors   diffusers format + adapter metadata: load_lora_weights
    kohya_lora.safetensors             kohya/A1111/ComfyUI keys: lora_unet_..._to_q.lora_down.weight
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from ..adapter_files import ADAPTER_WEIGHTS, KOHYA_WEIGHTS
from ..adapters import require_no_adapters
from .config import TrainConfig

ADAPTER_NAME = "taleweaver"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the UNet's attention projections
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]  # the CLIP encoders' ones
# Instance attributes that add_adapter and enable_gradient_checkpointing leave behind.
SET_BY_TRAINING = frozenset({"peft_config", "_hf_peft_config_loaded", "_gradient_checkpointing_func"})


def trained_modules(pipe, config: TrainConfig) -> dict[str, Any]:
    """The pipeline's components that get LoRA layers: the UNet, and the text encoders if asked."""
    modules = {"unet": pipe.unet}
    if config.train_text_encoder:
        modules.update(text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2)
    return modules


@contextlib.contextmanager
def lora_layers(pipe, config: TrainConfig, *, gradient_checkpointing: bool) -> Iterator[dict[str, Any]]:
    """Add fresh trainable LoRA layers (float32, seeded) to the pipeline; remove them on exit.

    Yields the modules that carry them. Everything else is frozen meanwhile; on exit every
    requires_grad and train/eval flag is put back and the pipeline computes exactly as before.
    A pipeline holding loaded adapters is refused (models.PipelineInUseError). On the shared
    pipeline, hold models.pipeline_lock() for the whole block.
    """
    import torch
    from peft import LoraConfig

    require_no_adapters(pipe, "training")
    modules = trained_modules(pipe, config)
    components = {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
    snapshot = {name: _flags(c) for name, c in components.items()}
    try:
        for component in components.values():
            component.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            for name, module in modules.items():
                targets = UNET_TARGETS if name == "unet" else TEXT_TARGETS
                module.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.lora_alpha,
                                              init_lora_weights="gaussian",
                                              target_modules=targets), adapter_name=ADAPTER_NAME)
        for module in modules.values():
            for param in module.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
            module.train()
        if gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
        yield modules
    finally:
        if gradient_checkpointing:
            pipe.unet.disable_gradient_checkpointing()
        for module in modules.values():
            _remove_lora(module)
        for name, component in components.items():
            _restore_flags(component, snapshot[name])


def trainable_parameters(modules: dict[str, Any]) -> list:
    """The LoRA weights lora_layers made trainable, in a fixed order (the optimizer's)."""
    return [p for module in modules.values() for p in module.parameters() if p.requires_grad]


def lora_state_dict(modules: dict[str, Any]) -> dict[str, Any]:
    """The LoRA tensors of every trained module, keyed "unet.<peft key>": the live weights,
    detached, not copies (a checkpoint streams them to disk before the next step)."""
    from peft import get_peft_model_state_dict

    return {f"{name}.{key}": value.detach()
            for name, module in modules.items()
            for key, value in get_peft_model_state_dict(module, adapter_name=ADAPTER_NAME).items()}


def load_lora_state(modules: dict[str, Any], state: dict[str, Any]) -> None:
    """Put saved LoRA tensors back into the layers lora_layers added; every key must fit."""
    from peft import set_peft_model_state_dict

    expected = set(lora_state_dict(modules))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state))[:3], sorted(set(state) - expected)[:3]
        raise ValueError(f"saved LoRA weights don't fit this model "
                         f"(missing {missing}, unexpected {extra})")
    for name, module in modules.items():
        prefix = f"{name}."
        part = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        set_peft_model_state_dict(module, part, adapter_name=ADAPTER_NAME)


def save_adapter(folder: Path, modules: dict[str, Any], config: TrainConfig) -> None:
    """Write the diffusers-format weights (with adapter metadata) and the kohya-format file."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    layers, metadata, peft_state = {}, {}, {}
    for name, module in modules.items():
        state = _portable(name, get_peft_model_state_dict(module, adapter_name=ADAPTER_NAME))
        layers[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(state)
        # With alpha != rank the scale alpha/rank is only recoverable from this metadata.
        metadata[f"{name}_lora_adapter_metadata"] = module.peft_config[ADAPTER_NAME].to_dict()
        peft_state.update({f"{name}.{key}": value for key, value in state.items()})
    StableDiffusionXLPipeline.save_lora_weights(folder, weight_name=ADAPTER_WEIGHTS,
                                                **layers, **metadata)
    kohya = kohya_state_dict(peft_state, config.lora_alpha)
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(folder / KOHYA_WEIGHTS),
              metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(config.rank),
                        "ss_network_alpha": str(config.lora_alpha),
                        "ss_base_model_version": "sdxl_base_v1-0"})


def kohya_state_dict(peft_state: dict[str, Any], alpha: int) -> dict[str, Any]:
    """kohya/A1111/ComfyUI key names (lora_unet_..., lora_te1_..., lora_te2_...) with true alphas.

    diffusers' converter writes each `.alpha` as the rank, which is only right when alpha == rank;
    here every `.alpha` holds the configured alpha, so the scale alpha/rank survives the trip.
    """
    import torch
    from diffusers.utils import convert_state_dict_to_kohya

    converted = convert_state_dict_to_kohya(peft_state)
    return {key: torch.tensor(float(alpha)) if key.endswith(".alpha") else value
            for key, value in converted.items()}


def _portable(name: str, state: dict[str, Any]) -> dict[str, Any]:
    """CLIP keys as every loader expects them ("text_model.encoder..."): transformers 5 dropped
    that level from CLIPTextModel, and diffusers strips it again where it is absent."""
    if name == "unet":
        return state
    return {key if key.startswith("text_model.") else f"text_model.{key}": value
            for key, value in state.items()}


def _flags(module) -> tuple[dict[str, bool], dict[str, tuple[bool, frozenset]]]:
    """requires_grad of every parameter; train flag and instance attribute names of every module."""
    return ({name: p.requires_grad for name, p in module.named_parameters()},
            {name: (m.training, frozenset(vars(m))) for name, m in module.named_modules()})


def _restore_flags(module, flags) -> None:
    """Put the flags back, and drop the attributes that adding adapters and checkpointing set on
    modules that lacked them, so their class defaults apply again."""
    requires_grad, modules = flags
    for name, param in module.named_parameters():
        param.requires_grad_(requires_grad[name])
    for name, sub in module.named_modules():
        training, attributes = modules[name]
        sub.training = training
        for added in SET_BY_TRAINING - attributes:
            sub.__dict__.pop(added, None)


def _remove_lora(module) -> None:
    """Swap every LoRA-wrapped layer back for its base layer."""
    from diffusers.utils import recurse_remove_peft_layers

    recurse_remove_peft_layers(module)
