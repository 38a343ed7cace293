"""How much GPU time training will take, shown before it starts (ZeroGPU users have minutes a day).

Every chunk records its measured seconds per step in <data_dir>/step_times.json, per hardware,
base model and the options that change the cost (checkpointing, quantization, text encoders),
as seconds per sample per megapixel; estimates scale that by resolution and batch. Until this
hardware has measured anything, KNOWN_STEP_SECONDS gives rough per-GPU figures. The same file
keeps what bench/gpu_budget.py measured (`record_measured`): a guided inference step, which
`image_seconds` then uses instead of deriving it from the training step, and the other phases.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..hardware import Hardware, detect
from ..progress import counted, format_seconds
from ..settings import Settings
from ..store import StoreError, atomic_write_json, read_json
from .config import CLASS_IMAGE_STEPS, TrainConfig, draws_validation, validation_side

STEP_TIMES_FILE = "step_times.json"
REFERENCE_PIXELS = 1024 * 1024
SAFETY = 1.2  # margin on ZeroGPU call durations: a call that runs over loses its chunk
CALL_OVERHEAD_SECONDS = 10  # per GPU call: caching latents, the first slow step, saving
# An inference forward pass (one half of a guided step) as a share of a training step's time per
# sample. diffusers' tutorials/fast_diffusion.md draws SDXL at 1024 px in 30 steps in 3.31 s on
# an A100 (bf16, SDPA, text encoding and decoding included): 0.11 s a guided step, so about 0.14
# of the A100 training figure below per forward pass. 1/6 keeps a margin, since an image call
# that runs over its ZeroGPU duration loses its image.
FORWARD_SHARE = 1 / 6
# A free Hugging Face account's ZeroGPU time a day. The docs' table (huggingface.co/docs/hub/
# spaces-zerogpu, "Usage Tiers") said 3.5 min (PRO 25 min); the 2026 page gives PRO 8 times a
# free account's quota and PRO users report 40 min, which makes about 5 min (shared/DESIGN.md).
ZEROGPU_FREE_DAILY_SECONDS = 5 * 60
# What bench/gpu_budget.py measures besides step times (record_measured, measured): seconds of
# one guided inference step per megapixel, of loading the base pipeline, of loading one
# character's adapter and of switching to adapters already loaded, of a validation image, and
# of one picture of a page in each style (PAGE + the style's name).
IMAGE_STEP = "image step per megapixel"
MEASURED = (IMAGE_STEP, "pipeline load", "adapter load", "adapter switch", "validation image")
PAGE = "page "

# ROUGH ESTIMATES, NOT MEASUREMENTS: seconds per sample of an SDXL LoRA training step at
# 1024x1024, bf16, no gradient checkpointing, used only until this hardware has measured its own
# step time. Orders of magnitude from public reports of diffusers and kohya SDXL LoRA training
# speeds; the two we could check are both above what was reported, so the figures err on the
# slow side: LoRA Ease's cost calculator (huggingface.co/spaces/multimodalart/lora-ease, app.py)
# counts 2.0 s a step on an A10G at batch 2 with gradient checkpointing and pivotal tuning
# (1.0 s a sample, about 0.75 without checkpointing), and diffusers PR #4470 reports 500 steps
# of 4 accumulated samples, with checkpointing and 8-bit Adam, in about 1.5 h on a free Colab T4
# (2.7 s a sample, about 2.1 without). ZeroGPU's default workload is half an RTX PRO 6000
# Blackwell (48 GB: a MIG 2g.48gb instance with half the card's SMs and memory bandwidth, per
# NVIDIA's MIG user guide), so it takes twice the full card's time. Matched by substring of the
# GPU name, first match wins (so "L40S" comes before "L4").
KNOWN_STEP_SECONDS = (
    ("H200", 0.18), ("H100", 0.2), ("B200", 0.12), ("ZeroGPU", 0.5), ("RTX PRO 6000", 0.25),
    ("A100", 0.4), ("L40S", 0.45), ("4090", 0.45), ("A6000", 0.6), ("A10G", 1.0),
    ("L4", 1.3), ("T4", 3.0),
)
# Rough cost factors applied to the table figures only (measured times already include them).
CHECKPOINTING_COST = 1.3
QUANTIZED_COST = {"none": 1.0, "8bit": 1.5, "4bit": 1.3}
TEXT_ENCODER_COST = 1.1


@dataclass(frozen=True)
class Estimate:
    """GPU time still needed for a run, and where the figure comes from."""

    seconds: Optional[float]  # None: nothing known yet for this hardware
    steps_left: int
    seconds_per_step: Optional[float]
    class_images_to_make: int
    source: str  # "measured" on this hardware, "table" (rough published figure) or "unknown"
    hardware: str
    free_days: Optional[int] = None  # on ZeroGPU: days of a free account's GPU time it needs

    def describe(self) -> str:
        """"about 4 min of GPU time for 560 steps (measured on NVIDIA H100)" and the like; on
        ZeroGPU it also says plainly when that is more than a free account gets in a day."""
        if not self.steps_left and not self.class_images_to_make:
            return "nothing left to train"
        work = counted(self.steps_left, "step")
        if self.class_images_to_make:
            work += f" and {counted(self.class_images_to_make, 'class image')}"
        if self.seconds is None:
            return (f"{work}; no time estimate yet on {self.hardware}: "
                    "it is measured during the first steps")
        where = {"measured": f"measured on {self.hardware}",
                 "table": f"rough figure for {self.hardware}, refined after the first chunk"}
        processor = "CPU" if self.hardware == "CPU" else "GPU"
        text = (f"about {format_seconds(self.seconds)} of {processor} time for {work} "
                f"({where[self.source]})")
        if self.free_days and self.free_days > 1:
            text += (f". That is more than the {format_seconds(ZEROGPU_FREE_DAILY_SECONDS)} a day "
                     f"a free Hugging Face account gets on ZeroGPU, so with one it takes at least "
                     f"{counted(self.free_days, 'day')}: when the day's GPU time runs out, training "
                     "stops at its last checkpoint; start it again the next day and it goes on "
                     "from there (PRO accounts get several times more GPU time a day)")
        return text


def samples_per_step(config: TrainConfig) -> int:
    """Images through the UNet per step: the crops, and as many class images with prior preservation."""
    return config.batch_size * (2 if config.prior_preservation else 1)


def record_step_time(settings: Settings, hardware: Hardware, config: TrainConfig,
                     seconds_per_step: float) -> None:
    """Remember a measured step time for later estimates and ZeroGPU call durations."""
    path = settings.data_dir / STEP_TIMES_FILE
    times = _read_times(settings)
    megapixel_samples = samples_per_step(config) * settings.resolution ** 2 / 1e6
    times[_key(settings, hardware, config)] = seconds_per_step / megapixel_samples
    atomic_write_json(path, times)


def step_seconds(settings: Settings, hardware: Hardware,
                 config: TrainConfig) -> tuple[Optional[float], str]:
    """Seconds per training step for this config here, and "measured", "table" or "unknown"."""
    scale = samples_per_step(config) * settings.resolution ** 2
    measured = _read_times(settings).get(_key(settings, hardware, config))
    if isinstance(measured, (int, float)) and measured > 0:
        return measured * scale / 1e6, "measured"
    for name, seconds in KNOWN_STEP_SECONDS:
        if hardware.has_gpu and name.lower() in hardware.name.lower():
            factor = QUANTIZED_COST[config.quantize]
            factor *= CHECKPOINTING_COST if config.gradient_checkpointing == "on" else 1.0
            factor *= TEXT_ENCODER_COST if config.train_text_encoder else 1.0
            return seconds * factor * scale / REFERENCE_PIXELS, "table"
    return None, "unknown"


def image_seconds(settings: Settings, hardware: Hardware, config: TrainConfig,
                  inference_steps: float) -> Optional[float]:
    """Seconds to draw one image at the training resolution with classifier-free guidance: from
    the guided step time bench/gpu_budget.py measured here, else from the training step time of
    this config (a forward pass takes FORWARD_SHARE of a step per sample)."""
    per_megapixel = measured(settings, hardware, IMAGE_STEP)
    if per_megapixel is not None:
        return inference_steps * per_megapixel * settings.resolution ** 2 / 1e6
    per_step, _ = step_seconds(settings, hardware, config)
    if per_step is None:
        return None
    return inference_steps * 2 * FORWARD_SHARE * per_step / samples_per_step(config)


def validation_image_steps(settings: Settings, hardware: Hardware, config: TrainConfig) -> float:
    """The validation image as inference steps at the training resolution (its steps scaled by
    its smaller area); 0 where none is drawn (config.validation)."""
    if not draws_validation(config, hardware.has_gpu):
        return 0.0
    side = validation_side(config, settings.resolution)
    return config.validation_steps * (side / settings.resolution) ** 2


def estimate_training(settings: Settings, config: TrainConfig, *, steps_done: int = 0,
                      class_images_missing: int = 0,
                      hardware: Optional[Hardware] = None) -> Estimate:
    """GPU seconds for the steps left, the class images still to draw and the validation image."""
    hardware = hardware or detect(settings)
    steps_left = max(0, config.steps - steps_done)
    per_step, source = step_seconds(settings, hardware, config)
    per_image = image_seconds(settings, hardware, config, 1)
    seconds = None
    if per_step is not None and per_image is not None:
        images = (class_images_missing * CLASS_IMAGE_STEPS
                  + validation_image_steps(settings, hardware, config))
        seconds = steps_left * per_step + per_image * images
    free_days = None
    if hardware.kind == "zerogpu" and seconds is not None:
        free_days = math.ceil(seconds / ZEROGPU_FREE_DAILY_SECONDS)
    return Estimate(seconds=seconds, steps_left=steps_left, seconds_per_step=per_step,
                    class_images_to_make=class_images_missing, source=source,
                    hardware=hardware.name, free_days=free_days)


def record_measured(settings: Settings, hardware: Hardware, what: str, seconds: float) -> None:
    """Remember a figure measured on this hardware with this base model (MEASURED says which:
    bench/gpu_budget.py writes them all), beside the step times."""
    if what not in MEASURED and not what.startswith(PAGE):
        raise ValueError(f"unknown measurement {what!r}; known: {', '.join(MEASURED)}, {PAGE}STYLE")
    times = _read_times(settings)
    times[_measured_key(settings, hardware, what)] = seconds
    atomic_write_json(settings.data_dir / STEP_TIMES_FILE, times)


def measured(settings: Settings, hardware: Hardware, what: str) -> Optional[float]:
    """A figure record_measured kept for this hardware and base model, or None."""
    value = _read_times(settings).get(_measured_key(settings, hardware, what))
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _measured_key(settings: Settings, hardware: Hardware, what: str) -> str:
    return " | ".join([what, hardware.name, hardware.dtype, settings.base_model])


def _key(settings: Settings, hardware: Hardware, config: TrainConfig) -> str:
    return " | ".join([hardware.name, hardware.dtype, settings.base_model,
                       f"checkpointing={config.gradient_checkpointing}",
                       f"quantize={config.quantize}", f"text_encoder={config.train_text_encoder}"])


def _read_times(settings: Settings) -> dict:
    try:
        times = read_json(settings.data_dir / STEP_TIMES_FILE)
    except StoreError:
        return {}
    return times if isinstance(times, dict) else {}
