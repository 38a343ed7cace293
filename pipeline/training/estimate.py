"""How long training will take, shown before it starts (ZeroGPU users have minutes a day).

A run has phases: loading the base model (once per process), drawing the class images for prior
preservation (once per user and kind), caching (latents, text embeddings, LoRA layers), the
training steps, then the validation image and saving. Each is timed on this hardware when it
runs and kept in <data_dir>/step_times.json (per hardware, dtype and base model; a step also per
the options that change its cost), scaled by pixels and steps; an estimate uses those
measurements, and until a phase has been timed here, rough figures on a GPU (KNOWN_STEP_SECONDS
and the constants below) or, on the CPU, says it is not timed yet rather than guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..hardware import CPU_PICTURE_SIDE, CPU_PICTURE_STEPS, Hardware, detect
from ..progress import counted, format_seconds
from ..settings import Settings
from ..store import StoreError, atomic_write_json, read_json
from .config import CLASS_IMAGE_STEPS, TrainConfig, draws_validation, validation_side

STEP_TIMES_FILE = "step_times.json"
REFERENCE_PIXELS = 1024 * 1024
SAFETY = 1.2  # margin on ZeroGPU call durations: a call that runs over loses its chunk
CALL_OVERHEAD_SECONDS = 10  # per GPU call: caching latents, the first slow step, saving
# Rough GPU figures for the phases around the steps, until measured here: loading SDXL from the
# local cache, caching a run's latents and text embeddings (with the first, slow step), saving.
# Saving (writing two weight files and a record) is taken as a few seconds on a CPU too.
ROUGH_GPU_SECONDS = {"load": 30.0, "setup": CALL_OVERHEAD_SECONDS, "save": 5.0}
ROUGH_CPU_SECONDS = {"save": 5.0}
PHASES = ("load", "class images", "setup", "steps", "validation image", "save")
PHASE_WORDS = {"load": "loading the model", "class images": "the class images",
               "setup": "preparing the photos", "steps": "the training steps",
               "validation image": "the validation image", "save": "saving"}
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
    """Time still needed for a run, phase by phase, and where the figures come from."""

    seconds: Optional[float]  # None: some phase has not been timed on this hardware yet
    steps_left: int
    seconds_per_step: Optional[float]
    class_images_to_make: int
    source: str  # "measured" on this hardware, "table" (rough published figures) or "unknown"
    hardware: str
    free_days: Optional[int] = None  # on ZeroGPU: days of a free account's GPU time it needs
    phases: dict = field(default_factory=dict)  # PHASES -> seconds (None: not timed yet here)

    def describe(self) -> str:
        """"about 4 min of GPU time for 560 steps (measured on NVIDIA H100): ..." and the like;
        on ZeroGPU it also says plainly when that is more than a free account gets in a day."""
        if not self.steps_left and not self.class_images_to_make:
            return "nothing left to train"
        work = counted(self.steps_left, "step")
        if self.class_images_to_make:
            work += f" and {counted(self.class_images_to_make, 'class image')}"
        unknown = [PHASE_WORDS[p] for p, seconds in self.phases.items() if seconds is None]
        known = {p: seconds for p, seconds in self.phases.items() if seconds}
        parts = ", ".join(f"{PHASE_WORDS[p]} {format_seconds(s)}" for p, s in known.items())
        if self.seconds is None:
            text = f"{work}; not timed on {self.hardware} yet: {_and(unknown)} (timed as they run)"
            if known:
                text += f"; the rest about {format_seconds(sum(known.values()))} ({parts})"
            return text
        where = {"measured": f"measured on {self.hardware}",
                 "table": f"rough figure for {self.hardware}, refined as it runs"}
        processor = "CPU" if self.hardware == "CPU" else "GPU"
        text = (f"about {format_seconds(self.seconds)} of {processor} time for {work} "
                f"({where[self.source]}: {parts})")
        if self.free_days and self.free_days > 1:
            text += (f". That is more than the {format_seconds(ZEROGPU_FREE_DAILY_SECONDS)} a day "
                     f"a free Hugging Face account gets on ZeroGPU, so with one it takes at least "
                     f"{counted(self.free_days, 'day')}: when the day's GPU time runs out, training "
                     "stops at its last checkpoint; start it again the next day and it goes on "
                     "from there (PRO accounts get several times more GPU time a day)")
        return text


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def samples_per_step(config: TrainConfig) -> int:
    """Images through the UNet per step: the crops, and as many class images with prior preservation."""
    return config.batch_size * (2 if config.prior_preservation else 1)


def record_step_time(settings: Settings, hardware: Hardware, config: TrainConfig,
                     seconds_per_step: float) -> None:
    """Remember a measured step time for later estimates and ZeroGPU call durations."""
    megapixel_samples = samples_per_step(config) * settings.resolution ** 2 / 1e6
    _record(settings, _key(settings, hardware, config), seconds_per_step / megapixel_samples)


def record_phase_time(settings: Settings, hardware: Hardware, phase: str, seconds: float) -> None:
    """Remember how long a phase around the steps took here: "load", "setup" or "save"."""
    _record(settings, _machine_key(settings, hardware, phase), seconds)


def record_image_time(settings: Settings, hardware: Hardware, seconds: float, steps: int,
                      width: int, height: int) -> None:
    """Remember a measured picture (guided inference of `steps` steps at width x height)."""
    _record(settings, _machine_key(settings, hardware, "image step"),
            seconds / (steps * width * height / 1e6))


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
                  inference_steps: int, side: Optional[int] = None) -> Optional[float]:
    """Seconds to draw one side x side image (the training resolution by default) with
    classifier-free guidance: as measured here, or on a GPU from the training step's figure
    (a forward pass takes FORWARD_SHARE of a step per sample); None on a CPU before any
    picture was timed (that ratio holds for SDXL on a GPU, not for a CPU)."""
    side = side or settings.resolution
    measured = _read_times(settings).get(_machine_key(settings, hardware, "image step"))
    if isinstance(measured, (int, float)) and measured > 0:
        return measured * inference_steps * side * side / 1e6
    per_step, _ = step_seconds(settings, hardware, config)
    if per_step is None or not hardware.has_gpu:
        return None
    pixels = side * side / settings.resolution ** 2
    return inference_steps * 2 * FORWARD_SHARE * per_step * pixels / samples_per_step(config)


def class_image_plan(settings: Settings, hardware: Hardware) -> tuple[int, int]:
    """(side, steps) of the class images drawn here: the training resolution in
    CLASS_IMAGE_STEPS on a GPU; on the CPU at most CPU_PICTURE_SIDE in CPU_PICTURE_STEPS."""
    if hardware.has_gpu:
        return settings.resolution, CLASS_IMAGE_STEPS
    return min(settings.resolution, CPU_PICTURE_SIDE), CPU_PICTURE_STEPS


def phase_seconds(settings: Settings, hardware: Hardware, phase: str) -> Optional[float]:
    """How long "load", "setup" or "save" takes here: measured, or a rough figure (any on a
    GPU; saving on a CPU), or None on a CPU that hasn't timed it yet."""
    return _phase(settings, hardware, phase)[0]


def estimate_training(settings: Settings, config: TrainConfig, *, steps_done: int = 0,
                      class_images_missing: int = 0, model_loaded: bool = False,
                      hardware: Optional[Hardware] = None) -> Estimate:
    """The time each phase still needs: loading the model (unless `model_loaded`), the class
    images still to draw, preparing the photos, the steps left, the validation image and
    saving (the last three only while steps are left)."""
    hardware = hardware or detect(settings)
    steps_left = max(0, config.steps - steps_done)
    per_step, step_source = step_seconds(settings, hardware, config)
    timed: dict[str, tuple[Optional[float], str]] = {}  # phase -> (seconds, source)
    if steps_left or class_images_missing:
        timed["load"] = (0.0, "measured") if model_loaded else _phase(settings, hardware, "load")
    if class_images_missing:
        side, steps = class_image_plan(settings, hardware)
        per_image, source = _image(settings, hardware, config, steps, side)
        timed["class images"] = (_times(class_images_missing, per_image), source)
    if steps_left:
        timed["setup"] = _phase(settings, hardware, "setup")
        timed["steps"] = (_times(steps_left, per_step), step_source)
        if draws_validation(config, hardware.has_gpu):
            timed["validation image"] = validation_estimate(settings, hardware, config)
        timed["save"] = _phase(settings, hardware, "save")
    phases = {phase: seconds for phase, (seconds, _) in timed.items()}
    source = _worst(*(source for _, source in timed.values()))
    seconds = None if source == "unknown" else sum(phases.values())  # type: ignore[arg-type]
    free_days = None
    if hardware.kind == "zerogpu" and seconds is not None:
        free_days = math.ceil(seconds / ZEROGPU_FREE_DAILY_SECONDS)
    return Estimate(seconds=seconds, steps_left=steps_left, seconds_per_step=per_step,
                    class_images_to_make=class_images_missing, source=source,
                    hardware=hardware.name, free_days=free_days, phases=phases)


def validation_estimate(settings: Settings, hardware: Hardware,
                        config: TrainConfig) -> tuple[Optional[float], str]:
    """(seconds, source) of the validation image at its own size and steps; none drawn where
    config.validation says so, which takes no time."""
    if not draws_validation(config, hardware.has_gpu):
        return 0.0, "measured"
    return _image(settings, hardware, config, config.validation_steps,
                  validation_side(config, settings.resolution))


def _phase(settings: Settings, hardware: Hardware, phase: str) -> tuple[Optional[float], str]:
    measured = _read_times(settings).get(_machine_key(settings, hardware, phase))
    if isinstance(measured, (int, float)) and measured >= 0:
        return float(measured), "measured"
    rough = (ROUGH_GPU_SECONDS if hardware.has_gpu else ROUGH_CPU_SECONDS).get(phase)
    return (None, "unknown") if rough is None else (rough, "table")


def _image(settings: Settings, hardware: Hardware, config: TrainConfig, steps: int,
           side: Optional[int] = None) -> tuple[Optional[float], str]:
    seconds = image_seconds(settings, hardware, config, steps, side)
    if seconds is None:
        return None, "unknown"
    measured = _machine_key(settings, hardware, "image step") in _read_times(settings)
    return seconds, "measured" if measured else "table"


def _times(count: int, each: Optional[float]) -> Optional[float]:
    return None if each is None else count * each


def _worst(*sources: str) -> str:
    """The least certain of some figures' sources (all measured, some rough, some unknown)."""
    return next((s for s in ("unknown", "table") if s in sources), "measured")


def _record(settings: Settings, key: str, value: float) -> None:
    times = _read_times(settings)
    times[key] = value
    atomic_write_json(settings.data_dir / STEP_TIMES_FILE, times)


def _key(settings: Settings, hardware: Hardware, config: TrainConfig) -> str:
    return " | ".join([hardware.name, hardware.dtype, settings.base_model,
                       f"checkpointing={config.gradient_checkpointing}",
                       f"quantize={config.quantize}", f"text_encoder={config.train_text_encoder}"])


def _machine_key(settings: Settings, hardware: Hardware, phase: str) -> str:
    return " | ".join([hardware.name, hardware.dtype, settings.base_model, phase])


def _read_times(settings: Settings) -> dict:
    try:
        times = read_json(settings.data_dir / STEP_TIMES_FILE)
    except StoreError:
        return {}
    return times if isinstance(times, dict) else {}
