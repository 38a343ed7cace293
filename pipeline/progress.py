"""Progress of long work (training steps, illustrated pages), reported the same way everywhere.

The engine calls an optional `on_progress(Progress)`; the CLI draws it with tqdm, the app with
gr.Progress, the API streams it. Nothing here knows about either. A caller that wants the work
to stop (a cancelled event, a closed tab, Ctrl-C) raises `Cancelled` from `on_progress`: long
work reports often (every training step, every page), so it stops there, keeping what is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Progress:
    """`done` of `total` units ("step", "page", ...), with what is known about the rest."""

    done: int
    total: int
    unit: str
    message: str = ""
    loss: Optional[float] = None
    seconds_left: Optional[float] = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def describe(self) -> str:
        """One line for people: "step 120/400 · loss 0.081 · about 2 min left"."""
        parts = [f"{self.unit} {self.done}/{self.total}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.seconds_left is not None:
            parts.append(f"about {format_seconds(self.seconds_left)} left")
        if self.message:
            parts.append(self.message)
        return " · ".join(parts)


ProgressFn = Callable[[Progress], None]


class Cancelled(Exception):
    """The caller cancelled the work, raised from `on_progress`. Training saves a checkpoint
    first and illustration keeps the pages drawn, then it goes on up to the door."""


def format_seconds(seconds: float) -> str:
    """"45 s", "3 min", "1 h 20 min": rounded the way people say durations."""
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def counted(count: int, noun: str, plural: str = "") -> str:
    """"1 photo", "3 photos" (`plural` for nouns that don't just take an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
