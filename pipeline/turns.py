"""Fair turns on the one GPU of this process, so that no user holds it for long.

GPU work is cut into short units: one page, one training chunk (at most
TALEWEAVER_CHECKPOINT_SECONDS, or one ZeroGPU call), one draft. Each unit waits for its `turn`;
when the GPU is free the next turn goes to the waiting user who was served longest ago, so a
parent's single page waits for the page or chunk now drawing, not for a whole book or a whole
training run of someone else. Each user may have `gpu_jobs_per_user` jobs running or waiting at
once (`job`); one more is refused at once with a message.

A book holds its characters' adapters in the shared pipeline from its first page to its last
(`adapters_held`); training needs the base model alone, so a training unit (`exclusive`) waits
until no book holds adapters, and while it waits no new book starts, so neither starves.
Waiting reports every WAIT_REPORT_S through `on_wait(ahead)`, which may raise (a cancelled
request leaves the line at once).
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from .hardware import on_zerogpu

WAIT_REPORT_S = 1.0

WaitFn = Callable[[int], None]  # called with how many units are ahead; may raise to give up


class Busy(ValueError):
    """A user asked for more GPU jobs at once than each user may have."""


@dataclass(eq=False)
class _Ticket:
    user: str
    exclusive: bool
    number: int = field(default=0)


class Turns:
    """The GPU's line: round robin by user, page or chunk at a time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._running: Optional[_Ticket] = None
        self._last_served: dict[str, int] = {}
        self._served = itertools.count(1)
        self._numbers = itertools.count(1)
        self._jobs: Counter[str] = Counter()
        self._holding = 0  # books holding adapters in the shared pipeline

    @contextlib.contextmanager
    def job(self, user: str, limit: int, what: str) -> Iterator[None]:
        """Count one job of `user` (a training run, a book, a page, a draft) while it runs or
        waits; Busy if the user already has `limit`."""
        with self._cond:
            if self._jobs[user] >= limit:
                raise Busy(f"you already have {self._jobs[user]} pictures, drafts or trainings "
                           f"running or waiting, the most at once; {what} can start when one "
                           "of them is done")
            self._jobs[user] += 1
        try:
            yield
        finally:
            with self._cond:
                self._jobs[user] -= 1
                if not self._jobs[user]:
                    del self._jobs[user]

    @contextlib.contextmanager
    def turn(self, user: str, *, exclusive: bool = False,
             on_wait: Optional[WaitFn] = None) -> Iterator[None]:
        """Hold the GPU for one unit of work, after waiting for this user's turn."""
        ticket = _Ticket(user, exclusive, next(self._numbers))
        with self._cond:
            self._waiting.append(ticket)
            self._cond.notify_all()
        try:
            while True:
                with self._cond:
                    if self._running is None and self._next() is ticket:
                        self._waiting.remove(ticket)
                        self._running = ticket
                        break
                    self._cond.wait(WAIT_REPORT_S)
                    ahead = self._ahead(ticket)
                if on_wait is not None:
                    on_wait(ahead)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._running = None
                self._last_served[user] = next(self._served)
                self._cond.notify_all()

    @contextlib.contextmanager
    def adapters_held(self, on_wait: Optional[WaitFn] = None) -> Iterator[None]:
        """Mark a book holding adapters in the shared pipeline for the block; it starts only
        when no training unit is waiting (training waits for books, books for training)."""
        while True:
            with self._cond:
                if not any(t.exclusive for t in self._waiting):
                    self._holding += 1
                    break
                self._cond.wait(WAIT_REPORT_S)
                ahead = len(self._waiting)
            if on_wait is not None:
                on_wait(ahead)
        try:
            yield
        finally:
            with self._cond:
                self._holding -= 1
                self._cond.notify_all()

    def _eligible(self, ticket: _Ticket) -> bool:
        return not (ticket.exclusive and self._holding)

    def _next(self) -> Optional[_Ticket]:
        """The waiting unit to run next: of the users served longest ago (never first), the
        one that came first; a training unit only while no book holds adapters."""
        eligible = [t for t in self._waiting if self._eligible(t)]
        return min(eligible, key=lambda t: (self._last_served.get(t.user, 0), t.number),
                   default=None)

    def _ahead(self, ticket: _Ticket) -> int:
        """Units that would run before this one if nobody else came: the running one, and the
        waiting ones that `_next` would pick earlier."""
        order = sorted(self._waiting, key=lambda t: (self._last_served.get(t.user, 0), t.number))
        return int(self._running is not None) + order.index(ticket)


GPU = Turns()  # the process's one line for its GPU (or its CPU, where it draws)


def job(user: str, limit: int, what: str):
    """Count one GPU job of `user` on the process's line (see Turns.job)."""
    return GPU.job(user, limit, what)


def turn(user: str, *, exclusive: bool = False, on_wait: Optional[WaitFn] = None):
    """One unit of GPU work in its turn (Turns.turn); on ZeroGPU, where every unit is a call
    of its own that ZeroGPU schedules, at once."""
    if on_zerogpu():
        return contextlib.nullcontext()
    return GPU.turn(user, exclusive=exclusive, on_wait=on_wait)


def adapters_held(on_wait: Optional[WaitFn] = None):
    """A book holding adapters in the shared pipeline (Turns.adapters_held); on ZeroGPU each
    page loads its adapters in its own call, so nothing is held."""
    if on_zerogpu():
        return contextlib.nullcontext()
    return GPU.adapters_held(on_wait)
