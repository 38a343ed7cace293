"""How the use cases share the GPU (pipeline/turns.py): each GPU job counts against its user's
limit, each unit of it (a page, a draft) waits for its turn, and the wait is reported as
progress, through which a cancelled caller leaves the line at once."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from .. import turns
from ..progress import Progress, ProgressFn
from ..settings import Settings


def gpu_job(settings: Settings, user: str, what: str):
    """Count a GPU job of the user's (turns.Busy past TALEWEAVER_GPU_JOBS_PER_USER)."""
    return turns.job(user, settings.gpu_jobs_per_user, what)


def waiting(on_progress: Optional[ProgressFn], done: int, total: int,
            unit: str) -> Optional[turns.WaitFn]:
    """Progress reports while a unit waits for the GPU."""
    if on_progress is None:
        return None
    return lambda ahead: on_progress(Progress(done, total, unit,
                                              f"waiting for the GPU ({ahead} ahead)"))


@contextlib.contextmanager
def turns_between_reports(user: str, on_progress: Optional[ProgressFn]) -> Iterator[ProgressFn]:
    """An on_progress for work that reports how many of its units are done (the pages of a
    book): the GPU turn is taken at the first report and handed on whenever that count grows,
    so every page is drawn in a turn of its own and other users' pages fit in between; reports
    within a page (its steps) leave the turn alone. Reports pass on to `on_progress` first:
    when it raises (a cancelled caller) the turn is kept while the work unwinds (a book lets go
    of its adapters), so the next job finds the pipeline as it should."""
    held = contextlib.ExitStack()
    done = -1  # units done at the last handover; -1: no turn taken yet

    def report(progress: Progress) -> None:
        nonlocal done
        if on_progress is not None:
            on_progress(progress)
        if progress.done <= done:
            return
        held.close()
        done = progress.done
        if progress.done < progress.total:
            held.enter_context(turns.turn(user, on_wait=waiting(
                on_progress, progress.done, progress.total, progress.unit)))

    try:
        yield report
    finally:
        held.close()
