"""Training state between chunks: one file, written atomically, so a killed process loses at most
the chunk it was in.

    <character>/checkpoint/state.pt        step, LoRA weights, optimizer, LR schedule, grad scaler
    <character>/checkpoint/progress.json   step and total as JSON, for estimates (no torch needed)

The random draws of step k are a pure function of (seed, k, process), see train_step.step_generator,
so the step number is the whole random state: a resumed run draws exactly what an uninterrupted
one would have drawn, however it was split into chunks.
"""
from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..store import StoreError, atomic_write_bytes, atomic_write_json, read_json

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"
PROGRESS_FILE = "progress.json"


class CorruptCheckpoint(ValueError):
    """The checkpoint file exists but can't be read back; the message names it."""


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly where it stopped."""

    step: int  # optimisation steps done
    key: dict[str, Any]  # what the run trains (config minus length, model, character): must match
    lora: dict[str, Any]  # LoRA tensors, "unet." / "text_encoder." / "text_encoder_2." prefixed
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    grad_scaler: Optional[dict[str, Any]] = None  # float16 loss scaling, where used


def save_checkpoint(folder: Path, state: TrainingState, total: int) -> None:
    """Write the state atomically (readers see the old file or the new one), then progress.json."""
    import torch

    buffer = io.BytesIO()
    torch.save(vars(state), buffer)
    atomic_write_bytes(folder / STATE_FILE, buffer.getvalue())
    atomic_write_json(folder / PROGRESS_FILE, {"step": state.step, "total": total, "key": state.key})


def load_checkpoint(folder: Path) -> Optional[TrainingState]:
    """The saved state, or None if there is none; an unreadable file is a CorruptCheckpoint."""
    import torch

    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        state = TrainingState(**record)
    except Exception as err:  # torch.load raises many types on damaged files
        raise CorruptCheckpoint(f"{path} can't be read ({type(err).__name__}: {err})") from err
    if not isinstance(state.step, int) or state.step < 0:
        raise CorruptCheckpoint(f"{path} has an invalid step {state.step!r}")
    return state


def set_aside(folder: Path) -> Path:
    """Move a damaged checkpoint out of the way (kept for inspection) and return where it went."""
    path = folder / STATE_FILE
    aside = path.with_name(f"{STATE_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    log.warning("damaged training checkpoint moved to %s; training starts over", aside)
    return aside


def saved_progress(folder: Path, key: dict[str, Any]) -> int:
    """Steps already done by a checkpoint of this very run (0 if none or another run's)."""
    try:
        record = read_json(folder / PROGRESS_FILE)
    except StoreError:
        return 0
    if not isinstance(record, dict) or record.get("key") != key:
        return 0
    step = record.get("step")
    return step if isinstance(step, int) and step >= 0 else 0
