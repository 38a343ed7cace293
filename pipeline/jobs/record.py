"""The record of a character's training job, kept in its folder so that a parent who comes
back (or another tab, or the command line) finds the job, its state and how it ended.

    <character>/job/job.json   which job, where its photos went, how it ended
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from huggingface_hub import constants

from ..characters import Character, CharacterStore
from ..hub.repos import HubResult
from ..progress import Progress
from ..settings import Settings
from ..store import StoreError, atomic_write_json, read_json
from ..training.config import TrainConfig

log = logging.getLogger(__name__)
JOB_DIR = "job"
RECORD_FILE = "job.json"
STATES = ("scheduling", "running", "succeeded", "failed", "timed_out", "cancelled", "vanished")


@dataclass(frozen=True)
class JobRecord:
    """One training job of a character, as last seen (saved as job/job.json)."""

    character: str
    job_id: str
    namespace: str
    url: str
    bucket: str  # the private bucket its photos went to
    flavor: dict  # the Flavor, as JSON
    config: dict  # the TrainConfig it trains
    started: str  # UTC, ISO 8601
    timeout_seconds: int
    plan: str = ""  # what it was expected to take and cost, as shown before it started
    state: str = "scheduling"  # one of STATES
    message: str = ""  # the state in plain words
    settled: bool = False  # it ended, and on success its adapter is here
    cleaned: bool = False  # its photos (on success the whole bucket) are gone from the Hub
    progress: Optional[dict] = None  # the last Progress it printed
    seconds_running: Optional[int] = None
    checkpoint_step: int = 0  # the step of the checkpoint it left in the bucket
    repo_id: str = ""  # where it pushed the adapter
    revision: str = ""

    @property
    def active(self) -> bool:
        return not self.settled

    @property
    def done(self) -> bool:
        """The character is trained by this job, and its adapter is here."""
        return self.state == "succeeded" and self.settled

    def last_progress(self) -> Optional[Progress]:
        return Progress(**self.progress) if self.progress else None

    def cost_usd(self) -> Optional[float]:
        """What the job has cost so far: its running minutes at its flavor's price."""
        if self.seconds_running is None:
            return None
        return -(-self.seconds_running // 60) * self.flavor["usd_per_minute"]

    def to_json(self) -> dict:
        """The record, with what the doors show as after local training: done, step, total,
        loss, warnings, hub."""
        progress = self.last_progress()
        hub = None
        if self.state == "succeeded" and self.repo_id:
            url = f"{constants.ENDPOINT}/{self.repo_id}"
            hub = HubResult("pushed", self.repo_id, url, f"{self.character}'s adapter is in your "
                            f"private repo {self.repo_id}: {url}", revision=self.revision).to_json()
        return {**asdict(self), "active": self.active,
                "done": self.done,
                "step": progress.done if progress else self.checkpoint_step,
                "total": total_steps(self),
                "loss": progress.loss if progress else None, "cost_usd": self.cost_usd(),
                "warnings": [], "hub": hub}


def photos_deleted(done: bool) -> str:
    """How a record says where the photos' training copy is (a later look replaces one with
    the other once the deletion has happened)."""
    return ("the photos' training copy is deleted" if done else
            "the photos' training copy will be deleted at the next look (Hugging Face could not "
            "be reached)")


def load_record(settings: Settings, user: str, character: Character) -> Optional[JobRecord]:
    """The character's last training job, if it ever had one."""
    path = job_folder(settings, user, character) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return JobRecord(**read_json(path))
    except (StoreError, TypeError) as err:
        log.warning("ignoring unreadable job record %s: %s", path, err)
        return None


def total_steps(record: JobRecord) -> int:
    return TrainConfig.from_dict(record.config).steps


def job_folder(settings: Settings, user: str, character: Character) -> Path:
    """The character's job folder (its record, and the lock taken to start a job)."""
    return CharacterStore(settings, user).path(character, JOB_DIR)


def save_record(settings: Settings, user: str, character: Character, record: JobRecord) -> None:
    atomic_write_json(job_folder(settings, user, character) / RECORD_FILE, asdict(record))
