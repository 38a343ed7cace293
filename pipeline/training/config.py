"""What a training run does: TrainConfig (every knob, validated) and the presets by goal.

A parent picks a goal ("person", "pet", "object"); `preset_config` turns it into a full
TrainConfig, scaling the number of steps with the number of photos. An engineer can still set
any field: `preset_config("pet", 8, rank=32)` or `TrainConfig.from_dict(json)`, where an
unknown key is an error. Does not import torch.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..checks import shown

OPTIMIZERS = ("auto", "adamw", "adamw8bit")
SWITCHES = ("auto", "on", "off")
QUANTIZE = ("none", "8bit", "4bit")
# The range of every number a run takes (README's table): wide enough for any sensible run,
# narrow enough that no single call can ask for a billion steps or a batch no GPU holds.
WHOLE_RANGES = {
    "steps": (1, 5000), "rank": (1, 128), "alpha": (1, 1024), "warmup_steps": (0, 5000),
    "batch_size": (1, 8), "class_images": (0, 200), "validation_steps": (1, 100),
    "validation_size": (64, 2048),
    # 32 bits: each step's generator is seeded from (seed, step, process) in 64 bits.
    "seed": (0, 2 ** 32 - 1),
}
NUMBER_RANGES = {
    "learning_rate": (0.0, 0.1), "prior_weight": (0.0, 10.0), "snr_gamma": (0.0, 100.0),
    "offset_noise": (0.0, 1.0), "weight_decay": (0.0, 1.0), "max_grad_norm": (0.0, 100.0),
}
CLASS_IMAGE_STEPS = 25  # inference steps of each class image (prior preservation)
CLASS_IMAGE_GUIDANCE = 5.0
VALIDATION_FIELDS = ("validation", "validation_steps", "validation_size")  # not the adapter's


@dataclass(frozen=True)
class Preset:
    """What a goal sets: capacity, speed of learning, how long, and prior preservation."""

    rank: int
    learning_rate: float
    prior_preservation: bool
    steps_per_photo: int
    min_steps: int
    max_steps: int
    summary: str


PRESETS: dict[str, Preset] = {
    # Faces need the most capacity and steps; prior preservation keeps "a girl" meaning any
    # girl, so the other children in a story don't all get this child's face. Checked against
    # recipes for faces: LoRA Ease's "face" goal (huggingface.co/spaces/multimodalart/lora-ease,
    # app.py: rank 32, prior preservation with 150 class photos, 75 steps a photo within 500 to
    # 1500 at batch 2, Prodigy); diffusers' examples/dreambooth/README_sdxl.md (rank 4, 500 steps
    # of 4 accumulated samples at 1e-4, no prior preservation, "decent results" on a face data
    # set among others); Hugging Face's DreamBooth blog (huggingface.co/blog/dreambooth: faces
    # need more steps than objects, and prior preservation against overfitting on faces). With 8
    # photos ours shows the UNet 640 crops, against 1200 (LoRA Ease) and 2000 (diffusers), and
    # counts on min-SNR weighting (snr_gamma) to converge faster; its 24 class images (drawn once
    # per user and kind) are fewer than diffusers' default 100. Nothing we found says fewer steps,
    # fewer class images or no prior preservation would keep the likeness and the other faces.
    "person": Preset(rank=32, learning_rate=1e-4, prior_preservation=True, steps_per_photo=80,
                     min_steps=400, max_steps=1200,
                     summary="a person's face and look; other people stay different"),
    # Fur colour and markings; pets rarely share a page with another of their kind.
    "pet": Preset(rank=16, learning_rate=1e-4, prior_preservation=False, steps_per_photo=70,
                  min_steps=350, max_steps=1000,
                  summary="a pet's fur, markings and shape"),
    # A toy or a blanket: simple shapes and colours learn quickly at a small rank.
    "object": Preset(rank=8, learning_rate=1e-4, prior_preservation=False, steps_per_photo=50,
                     min_steps=250, max_steps=700,
                     summary="an object's shape and colours (a favourite toy)"),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one DreamBooth-LoRA run; saved next to the adapter it produced."""

    preset: str = "person"  # the goal these values started from (for the record)
    steps: int = 640  # optimisation steps in all (per process under accelerate launch)
    rank: int = 32  # LoRA rank of each adapted projection
    alpha: Optional[int] = None  # LoRA alpha; None means alpha = rank (scale 1)
    learning_rate: float = 1e-4  # peak learning rate, reached after the warm-up
    warmup_steps: int = 50  # linear warm-up, then constant
    batch_size: int = 1  # crops per step (class images add as many again)
    prior_preservation: bool = True  # also learn base-model images of the kind ("girl")
    class_images: int = 24  # how many such images; made once per user and kind
    prior_weight: float = 1.0  # weight of the class-image loss
    snr_gamma: float = 5.0  # min-SNR-gamma loss weighting; 0 turns it off
    offset_noise: float = 0.0  # e.g. 0.05 lets the model make darker and brighter images
    train_text_encoder: bool = False  # LoRA on both CLIP text encoders as well (slower)
    describe: bool = False  # add the character's look description to the prompt
    flip: bool = True  # also train on the mirror image of each crop
    optimizer: str = "auto"  # auto (8-bit AdamW on a GPU, else AdamW), adamw, adamw8bit
    weight_decay: float = 1e-4  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping; 0 turns it off
    gradient_checkpointing: str = "auto"  # auto (on for GPUs under 30 GB), on, off
    quantize: str = "none"  # none, 8bit, 4bit: store the frozen base UNet so (CUDA only)
    validation: str = "auto"  # the picture drawn after training: auto (on a GPU), on, off
    validation_steps: int = 15  # inference steps of the validation image
    validation_size: int = 768  # its side in pixels (at most the training resolution)
    seed: int = 0  # the same seed gives the same adapter (bitwise on the CPU)

    def __post_init__(self) -> None:
        _require(self.preset in PRESETS, "preset", self.preset, " or ".join(PRESETS))
        for name, (low, high) in WHOLE_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                value = int(value)  # JSON may write 600 as 600.0
                object.__setattr__(self, name, value)
            if value is not None or name != "alpha":  # alpha None: the rank
                _require_int(name, value, low, high)
        _require(self.validation in SWITCHES, "validation", self.validation, ", ".join(SWITCHES))
        _require(self.validation_size % 8 == 0, "validation_size", self.validation_size,
                 "a multiple of 8")
        for name, (low, high) in NUMBER_RANGES.items():
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and not isinstance(value, bool)
                     and math.isfinite(value) and low <= value <= high, name, value,
                     f"a number from {low:g} to {high:g}")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate,
                 f"a number above 0, at most {NUMBER_RANGES['learning_rate'][1]:g}, e.g. 1e-4")
        for name in ("prior_preservation", "train_text_encoder", "describe", "flip"):
            _require(isinstance(getattr(self, name), bool), name, getattr(self, name),
                     "true or false")
        _require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, ", ".join(OPTIMIZERS))
        _require(self.gradient_checkpointing in SWITCHES, "gradient_checkpointing",
                 self.gradient_checkpointing, ", ".join(SWITCHES))
        _require(self.quantize in QUANTIZE, "quantize", self.quantize, ", ".join(QUANTIZE))
        if self.prior_preservation:
            _require(self.class_images >= 1, "class_images", self.class_images,
                     "at least 1 when prior_preservation is on")

    @property
    def lora_alpha(self) -> int:
        return self.alpha if self.alpha is not None else self.rank

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """A TrainConfig from JSON-like values; an unknown key is an error naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training setting {', '.join(unknown)}; "
                             f"known settings: {', '.join(sorted(known))}")
        return cls(**values)

    def training_key(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be continued: all but the length of the run
        and the validation image."""
        key = self.to_dict()
        for name in ("steps", *VALIDATION_FIELDS):
            del key[name]
        return key

    def same_adapter(self, other: "TrainConfig") -> bool:
        """True when both train exactly the same adapter (they may draw other validation images)."""
        return (self.training_key(), self.steps) == (other.training_key(), other.steps)


@dataclass(frozen=True)
class TrainingRecord:
    """How an adapter was trained, saved with it as train_config.json: the TrainConfig, and the
    base model, resolution and trigger it was applied to, with the prompts (for the model card).

    The file is one flat table (what the model card shows): these fields, then the TrainConfig's.
    `from_dict` takes these out and hands the rest to the strict TrainConfig.from_dict.
    """

    base_model: str  # TALEWEAVER_BASE_MODEL: a Hub id or a local folder
    resolution: int  # TALEWEAVER_RESOLUTION: side of the training crops in pixels
    trigger: str  # the character's trigger token
    instance_prompt: str  # the prompt of the character's own crops
    validation_prompt: str  # the prompt of the validation image
    config: TrainConfig
    photos: str = ""  # Character.photos_key of the crops it learnt; "" in older records

    def __post_init__(self) -> None:
        for name in ("base_model", "trigger", "instance_prompt", "validation_prompt"):
            value = getattr(self, name)
            _require(isinstance(value, str) and bool(value.strip()), name, value, "a non-empty text")
        _require(isinstance(self.photos, str), "photos", self.photos, "a text")
        _require(isinstance(self.resolution, int) and not isinstance(self.resolution, bool)
                 and self.resolution >= 64, "resolution", self.resolution,
                 "a whole number, at least 64")
        _require(isinstance(self.config, TrainConfig), "config", self.config, "a TrainConfig")

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in RECORDED}
        return {**values, **self.config.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainingRecord":
        """A record from what to_dict wrote; a missing or unknown key is an error."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a training record is a JSON object, not {type(values).__name__}")
        missing = [name for name in RECORDED if name not in values and name not in OPTIONAL]
        if missing:
            raise ValueError(f"training record without {', '.join(missing)}")
        config = TrainConfig.from_dict({k: v for k, v in values.items() if k not in RECORDED})
        return cls(config=config, **{name: values[name] for name in RECORDED if name in values})


RECORDED = tuple(f.name for f in dataclasses.fields(TrainingRecord) if f.name != "config")
OPTIONAL = ("photos",)  # fields added later: records written before them still load


def draws_validation(config: TrainConfig, has_gpu: bool) -> bool:
    """Whether a run draws its validation image: "auto" draws it on a GPU only (on the CPU the
    picture would cost more than many training steps; the parent can ask for it with "on")."""
    return config.validation == "on" or (config.validation == "auto" and has_gpu)


def validation_side(config: TrainConfig, resolution: int) -> int:
    """The validation image's side: its own setting, never above the training resolution."""
    return min(config.validation_size, resolution)


def preset_config(preset: str, photo_count: int, **overrides: Any) -> TrainConfig:
    """The TrainConfig for a goal: steps scale with the photos within the preset's bounds.

    Any field can be overridden by keyword (unknown names are an error), e.g. `steps=300`.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is unknown; choose {' or '.join(PRESETS)}")
    if photo_count < 1:
        raise ValueError("a character needs at least one photo to train on")
    goal = PRESETS[preset]
    steps = min(goal.max_steps, max(goal.min_steps, goal.steps_per_photo * photo_count))
    values: dict[str, Any] = dict(preset=preset, steps=steps, rank=goal.rank,
                                  learning_rate=goal.learning_rate,
                                  prior_preservation=goal.prior_preservation)
    values.update(overrides)
    return TrainConfig.from_dict(values)


PET_KINDS = frozenset({"dog", "puppy", "cat", "kitten", "rabbit", "bunny", "hamster",
                       "guinea pig", "horse", "pony", "parrot", "bird", "turtle", "tortoise"})


def preset_for_kind(kind: str) -> str:
    """The goal a character's kind suggests: "pet" for animals people keep, else "person"."""
    return "pet" if kind.strip().lower() in PET_KINDS else "person"


def _require_int(name: str, value: object, low: int, high: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    _require(ok, name, value, f"a whole number from {low} to {high}")


def _require(ok: bool, name: str, value: object, accepts: str) -> None:
    if not ok:
        raise ValueError(f"training setting {name}={shown(value)} is invalid: it accepts "
                         f"{accepts}")
