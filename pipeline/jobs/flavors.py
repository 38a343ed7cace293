"""The hardware Hugging Face Jobs offers (`list_jobs_hardware`: GPUs and prices), and what a
training run costs on one: the minutes from the same estimate the app shows for training here,
the dollars from the flavor's price, and the time limit the job gets (the estimate with a
margin, so a stuck job can't run up a bill).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..hardware import Hardware
from ..hub.calls import Sleep, call_hub
from ..progress import counted, format_seconds
from ..settings import Settings
from ..training.config import TrainConfig
from ..training.estimate import Estimate, estimate_training

# ROUGH FIGURE, NOT MEASURED: seconds a job spends before its first training step (the image
# pulled, SDXL's weights downloaded and loaded); billed like the training itself.
START_SECONDS = 300
TIMEOUT_MARGIN = 2.0  # the job's time limit is this times the estimate (with the start)...
MIN_TIMEOUT_SECONDS = 30 * 60  # ...but never less than this,
UNKNOWN_TIMEOUT_SECONDS = 3 * 3600  # and this when there is no estimate for the hardware
CHECKPOINT_SECONDS = 300  # a job saves a checkpoint to the private bucket about this often
PER_MINUTE = {"second": 60.0, "minute": 1.0, "hour": 1 / 60}  # unit_label -> price factor


class UnknownFlavor(ValueError):
    """A hardware name that Hugging Face Jobs does not offer; the message lists the choices."""


@dataclass(frozen=True)
class Flavor:
    """One kind of Jobs hardware with GPUs: its name for run_job, what it is, its price."""

    name: str  # e.g. "l4x1"
    label: str  # e.g. "Nvidia L4"
    gpu: str  # the accelerator model, e.g. "L4"
    gpus: int
    memory: str  # GPU memory, e.g. "24 GB"
    usd_per_minute: float

    @property
    def usd_per_hour(self) -> float:
        return self.usd_per_minute * 60

    def hardware(self) -> Hardware:
        """This flavor as the estimate knows hardware (its table matches the GPU's name)."""
        return Hardware(kind="cuda", device="cuda", dtype="bfloat16",
                        name=f"{self.gpu} ({self.name} on Hugging Face Jobs)")

    def describe(self) -> str:
        """"Nvidia L4 (l4x1): 1 GPU, 24 GB, $0.80 an hour"."""
        gpus, price = counted(self.gpus, "GPU"), dollars(self.usd_per_hour)
        return f"{self.label} ({self.name}): {gpus}, {self.memory}, {price} an hour"

    def to_json(self) -> dict:
        return {**asdict(self), "usd_per_hour": self.usd_per_hour, "text": self.describe()}


@dataclass(frozen=True)
class JobPlan:
    """A training job before it starts: the hardware, the GPU time still needed there, the
    billed minutes and dollars, the job's time limit and what it costs at most."""

    flavor: Flavor
    estimate: Estimate
    minutes: Optional[int]  # billed minutes, the start included; None: no estimate
    cost_usd: Optional[float]
    timeout_seconds: int
    max_cost_usd: float
    checkpoint_steps: int  # steps between checkpoints saved to the private bucket

    def describe(self) -> str:
        if not self.estimate.steps_left and not self.estimate.class_images_to_make:
            return "nothing left to train"
        limit = (f"the job stops after at most {format_seconds(self.timeout_seconds)} "
                 f"({dollars(self.max_cost_usd)} at most)")
        if self.minutes is None or self.cost_usd is None:
            text = (f"no time estimate for {self.flavor.label} yet ({self.estimate.describe()}); "
                    f"{limit}")
        else:
            text = (f"about {self.minutes} min on {self.flavor.label} ({self.flavor.name}) with "
                    f"its start, about {dollars(self.cost_usd)} at "
                    f"{dollars(self.flavor.usd_per_hour)} an hour, billed to your Hugging Face "
                    f"account; {limit}")
        if self.flavor.gpus > 1:
            text += (f". Its {self.flavor.gpus} GPUs train together (each step learns from "
                     f"{self.flavor.gpus} times as many pictures, in about the time of one): "
                     "one GPU is plenty for one character")
        return text

    def to_json(self) -> dict:
        return {"flavor": self.flavor.to_json(), "estimate": asdict(self.estimate),
                "minutes": self.minutes, "cost_usd": self.cost_usd,
                "timeout_seconds": self.timeout_seconds, "max_cost_usd": self.max_cost_usd,
                "checkpoint_steps": self.checkpoint_steps, "text": self.describe()}


def dollars(amount: float) -> str:
    """"$0.19"; "under $0.01" for a few tenths of a cent."""
    return "under $0.01" if 0 < amount < 0.005 else f"${amount:.2f}"


def list_flavors(api: Any, token: str, sleep: Sleep = time.sleep) -> list[Flavor]:
    """The GPU hardware Jobs offers now with its price, cheapest first (CPU-only is left out:
    SDXL training needs a GPU)."""
    found = [_flavor(info) for info in call_hub(lambda: api.list_jobs_hardware(token=token), sleep)]
    return sorted((f for f in found if f is not None), key=lambda f: (f.usd_per_minute, f.name))


def find_flavor(flavors: list[Flavor], name: str) -> Flavor:
    for flavor in flavors:
        if flavor.name == name.strip().lower():
            return flavor
    raise UnknownFlavor(f"Hugging Face Jobs has no GPU hardware called {name!r}; choose one "
                        f"of {', '.join(f.name for f in flavors) or 'none (none is offered now)'}")


def plan_job(settings: Settings, config: TrainConfig, flavor: Flavor, *, steps_done: int = 0,
             checkpoint_steps: Optional[int] = None) -> JobPlan:
    """What a job training with `config` on `flavor` will take and cost. A job starts on a
    fresh machine, so it draws every class image itself; `steps_done` come from the
    checkpoint a stopped job left in the bucket."""
    missing = config.class_images if config.prior_preservation else 0
    estimate = estimate_training(settings, config, steps_done=steps_done,
                                 class_images_missing=missing, hardware=flavor.hardware())
    minutes = cost = None
    if estimate.seconds is not None:
        minutes = math.ceil((estimate.seconds + START_SECONDS) / 60)
        cost = minutes * flavor.usd_per_minute
        timeout = max(MIN_TIMEOUT_SECONDS, math.ceil(minutes * 60 * TIMEOUT_MARGIN))
    else:
        timeout = UNKNOWN_TIMEOUT_SECONDS
    if checkpoint_steps is None:
        per_step = estimate.seconds_per_step
        checkpoint_steps = (round(CHECKPOINT_SECONDS / per_step) if per_step
                            else math.ceil(config.steps / 4))
    return JobPlan(flavor=flavor, estimate=estimate, minutes=minutes, cost_usd=cost,
                   timeout_seconds=timeout,
                   max_cost_usd=math.ceil(timeout / 60) * flavor.usd_per_minute,
                   checkpoint_steps=max(1, min(config.steps, checkpoint_steps)))


def _flavor(info: Any) -> Optional[Flavor]:
    """A JobHardwareInfo as a Flavor; None without a GPU or with a price we can't read."""
    accelerator = info.accelerator
    factor = PER_MINUTE.get(str(info.unit_label).lower().rstrip("s"))
    if accelerator is None or factor is None:
        return None
    try:
        gpus = max(1, int(accelerator.quantity))
    except (TypeError, ValueError):
        gpus = 1
    return Flavor(name=info.name, label=info.pretty_name, gpu=accelerator.model, gpus=gpus,
                  memory=accelerator.vram, usd_per_minute=float(info.unit_cost_usd) * factor)
