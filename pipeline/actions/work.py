"""Long work (training, illustrating) as a parent who comes back finds it: what runs, with its
progress, what finished while nobody watched, and cancelling."""
from __future__ import annotations

from typing import Optional

from ..settings import Settings
from ..work import Job as Job  # for the doors
from ..work import JobCancelled as JobCancelled
from ..work import WorkLog


def current_work(settings: Settings, user: str) -> list[Job]:
    """The user's running work, and work that ended without being shown (newest first)."""
    return [job for job in WorkLog(settings, user).recent() if job.running or not job.seen]


def get_work(settings: Settings, user: str, job_id: str) -> Job:
    """One piece of the user's work by its id."""
    return WorkLog(settings, user).get(job_id)


def latest_work(settings: Settings, user: str, kind: str) -> Optional[Job]:
    """The user's newest work of a kind ("training", "illustration"), if any."""
    return next(iter(WorkLog(settings, user).recent(kind)), None)


def cancel_work(settings: Settings, user: str, job_id: str) -> Job:
    """Ask running work to stop; it does at its next progress report (a training step, a
    class image, a page), keeping what is saved: drawn pages, class images, checkpoints."""
    log = WorkLog(settings, user)
    job = log.get(job_id)
    if not job.running:
        raise ValueError(f"{job.title} is not running any more ({job.message or job.state})")
    return log.update(job_id, cancel=True)


def mark_seen(settings: Settings, user: str, job_id: str) -> Job:
    """Record that the parent has seen how the work ended."""
    return WorkLog(settings, user).update(job_id, seen=True)
