"""The user's long work (training a character, illustrating a book), recorded while it runs, so
that a parent who closes the page and comes back finds it: its progress, a way to cancel it,
and the result of work that finished while nobody was looking.

    <data_dir>/users/<user>/work/<job id>.json     one record per job, the newest few kept

Whatever runs long reports into it through `recorded(...)`: a context manager whose `report`
is the ProgressFn to hand to the engine (it writes the latest progress, at most twice a
second, passes it on, and raises JobCancelled at the first report after a cancel was asked),
and whose `finish` records the outcome. Anything that reports Progress (training on another
machine, say) can record itself the same way. Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from .progress import Cancelled, Progress, ProgressFn
from .settings import Settings
from .store import StoreError, atomic_write_json, inside, locked, read_json, user_dir

STATES = ("running", "done", "failed", "cancelled", "stopped")
KEEP = 20  # finished records kept per user; older ones go when new work starts
WRITE_EVERY = 0.5  # s: progress is written at most this often (and always at the end)
HOST = socket.gethostname()


class JobCancelled(Cancelled):
    """The parent asked to cancel this work; raised at its next progress report, and stops it
    the way any other cancel does (training saves a checkpoint, a book keeps its pages)."""


@dataclass(frozen=True)
class Job:
    """One piece of long work and where it stands."""

    id: str
    kind: str  # what it is: "training", "illustration" (any word a reporter chooses)
    subject: str  # what it works on: a character's name, a book's id
    title: str  # for people: "Training Mia"
    state: str  # one of STATES; "stopped": its process ended without saying how it went
    started: str
    updated: str
    progress: Optional[dict] = None  # the latest Progress, as data
    message: str = ""  # the outcome, for people
    result: Optional[dict] = None  # the outcome, as the API gives it
    seen: bool = False  # the outcome was shown to the parent
    cancel: bool = False  # cancelling was asked
    host: str = ""
    pid: int = 0

    @property
    def running(self) -> bool:
        return self.state == "running"

    def describe(self) -> str:
        """"Training Mia: step 120/640 · about 6 min left" or "Training Mia: <its outcome>"."""
        if self.running:
            now = Progress(**self.progress).describe() if self.progress else "starting"
            return f"{self.title}: {now}" + (" · cancelling" if self.cancel else "")
        return f"{self.title}: {self.message or self.state}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class Recorder:
    """A job being recorded: `report` is its ProgressFn, `finish` records how it ended."""

    def __init__(self, log: "WorkLog", job: Job, on_progress: Optional[ProgressFn]):
        self.log, self.job, self.passed_on = log, job, on_progress
        self._written = 0.0
        self.outcome: Optional[tuple[str, Optional[dict]]] = None

    def report(self, progress: Progress) -> None:
        """Record the progress (throttled), pass it on, and stop if cancelling was asked."""
        now = time.monotonic()
        if now - self._written >= WRITE_EVERY or progress.done >= progress.total:
            self._written = now
            self.job = self.log.update(self.job.id, progress=dataclasses.asdict(progress))
        else:  # a small read, so that a cancel is seen at once
            self.job = self.log.get(self.job.id)
        if self.passed_on is not None:
            self.passed_on(progress)
        if self.job.cancel:
            raise JobCancelled(f"{self.job.title} was cancelled")

    def finish(self, message: str, result: Optional[dict] = None) -> None:
        """The outcome to record when the block ends without an error."""
        self.outcome = (message, result)


class WorkLog:
    """One user's work records; it never reads or writes outside that user's folder."""

    def __init__(self, settings: Settings, user: str):
        self.root = user_dir(settings, user) / "work"

    def begin(self, kind: str, subject: str, title: str) -> Job:
        """Record new running work (and forget the oldest finished records past KEEP)."""
        stamp = _now()
        job = Job(id=f"{time.time_ns():x}{secrets.token_hex(4)}", kind=kind, subject=subject,
                  title=title, state="running", started=stamp, updated=stamp, host=HOST,
                  pid=os.getpid())
        with locked(self.root):
            atomic_write_json(self._path(job.id), job.to_json())
            for old in [j for j in self.recent() if not j.running][KEEP:]:
                self._path(old.id).unlink(missing_ok=True)
        return job

    def update(self, job_id: str, **changes) -> Job:
        """Change a record under the lock (the app may be asking to cancel it meanwhile)."""
        with locked(self.root):
            job = dataclasses.replace(self.get(job_id), updated=_now(), **changes)
            atomic_write_json(self._path(job_id), job.to_json())
        return job

    def get(self, job_id: str) -> Job:
        """One record; a running job whose process is gone reads as "stopped"."""
        path = self._path(job_id)
        if not path.is_file():
            raise StoreError(f"no work with id {job_id!r}")
        record = read_json(path)
        try:
            job = Job(**record)
        except TypeError as err:
            raise StoreError(f"work record {job_id} is damaged ({err})") from None
        return _checked(job)

    def recent(self, kind: Optional[str] = None) -> list[Job]:
        """The user's work, newest first (damaged records are left out)."""
        jobs = []
        if self.root.is_dir():
            for path in self.root.glob("*.json"):
                with contextlib.suppress(StoreError):
                    jobs.append(self.get(path.stem))
        jobs = [j for j in jobs if kind is None or j.kind == kind]
        return sorted(jobs, key=lambda j: (j.started, j.id), reverse=True)

    def _path(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise StoreError(f"{job_id!r} is not a work id")
        return inside(self.root, f"{job_id}.json")


@contextlib.contextmanager
def recorded(settings: Settings, user: str, kind: str, subject: str, title: str,
             on_progress: Optional[ProgressFn] = None) -> Iterator[Recorder]:
    """Record work while the block runs: "done" with what `finish` was given, "cancelled"
    after any cancel (JobCancelled, a closed tab, Ctrl-C), else "failed" with the error's
    message (which is raised again)."""
    log = WorkLog(settings, user)
    recorder = Recorder(log, log.begin(kind, subject, title), on_progress)
    try:
        yield recorder
    except (Cancelled, KeyboardInterrupt):
        log.update(recorder.job.id, state="cancelled", message="cancelled")
        raise
    except BaseException as err:
        log.update(recorder.job.id, state="failed", message=str(err) or type(err).__name__)
        raise
    message, result = recorder.outcome or ("done", None)
    log.update(recorder.job.id, state="done", message=message, result=result)


def _checked(job: Job) -> Job:
    """A running job of this host whose process has ended is "stopped" (a restart, a crash)."""
    if job.running and job.host == HOST and not _alive(job.pid):
        return dataclasses.replace(job, state="stopped",
                                   message="stopped: the server restarted while it ran")
    return job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
