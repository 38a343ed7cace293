"""Training state between chunks: one file, written atomically, so a killed process loses at most
the chunk it was in.

    <character>/checkpoint/state.pt        step, LoRA weights, optimizer, LR schedule, grad scaler
    <character>/checkpoint/progress.json   step and total as JSON, for estimates (no torch needed)

A run keeps its checkpoint only while it is unfinished: the chunk that reaches the last step
writes the adapter instead and removes the folder (a run done in one go never writes one).

The random draws of step k are a pure function of (seed, k, process), see train_step.step_generator,
so the step number is the whole random state: a resumed run draws exactly what an uninterrupted
one would have drawn, however it was split into chunks.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..store import StoreError, atomic_write_json, atomic_writer, read_json

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
    """Write the state atomically (readers see the old file or the new one), then progress.json.

    torch.save streams the tensors straight into the file, one at a time (a GPU tensor is
    copied to the CPU as it is written), so no second copy of the state is ever held in memory.
    """
    import torch

    with atomic_writer(folder / STATE_FILE) as handle:
        torch.save(vars(state), handle)
    atomic_write_json(folder / PROGRESS_FILE, {"step": state.step, "total": total, "key": state.key})


def clear_checkpoint(folder: Path) -> None:
    """Remove a run's checkpoint once its adapter is written: the adapter and its config are
    what stays (a finished run's optimizer state would only take room). A damaged one set
    aside for inspection stays; the folder goes when nothing else is left in it."""
    for name in (PROGRESS_FILE, STATE_FILE):  # progress first: estimates never see a lone one
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    with contextlib.suppress(FileNotFoundError, OSError):
        folder.rmdir()


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
