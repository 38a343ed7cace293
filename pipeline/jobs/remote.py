"""A started training job as the app sees it: followed through its log lines, looked at again
when a parent comes back, cancelled, and settled once it has ended. On success the adapter
comes from the private repo into the local store (the character is then trained exactly as
after local training) and the bucket goes; otherwise the character is left as it was, the
photos leave the bucket and the checkpoint stays there for the next job.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import asdict
from typing import Any, Callable, Optional

from ..characters import Character, CharacterStore
from ..hub import calls as hub_calls
from ..hub.calls import HubCallFailed, Sleep, call_hub
from ..hub.repos import ensure_local_adapter
from ..progress import Progress, ProgressFn, format_seconds
from ..settings import Settings
from ..store import locked
from ..training.config import TrainConfig
from ..training.estimate import record_step_time
from . import bucket as private
from .flavors import Flavor
from .launch import JobsUnavailable
from .lines import parse
from .record import (JobRecord, job_folder, load_record, photos_deleted, save_record,
                     total_steps)

log = logging.getLogger(__name__)
ACTIVE = ("SCHEDULING", "RUNNING")
POLL_SECONDS = 15.0  # between looks at a job whose log stream ended before the job did
LOG_TAIL = 200  # log lines read back for a job's last progress and how it ended


def status(settings: Settings, user: str, character: Character, *, token: Optional[str],
           api: Any = None, sleep: Sleep = time.sleep) -> Optional[JobRecord]:
    """The character's job as it stands now: a running one with its last progress; an ended
    one settled (adapter here, photos gone), which this does once."""
    record = load_record(settings, user, character)
    if record is None or (record.settled and record.cleaned) or not token:
        return record
    api = api if api is not None else hub_calls.hf_api()
    if record.settled:
        return _cleaned(settings, user, character, record, token, api, sleep)
    try:
        info = _inspect(api, record, token, sleep)
        logs = _read_back(api, record, token, sleep)
    except HubCallFailed as err:
        return dataclasses.replace(record, message=f"{record.message} (It couldn't be checked "
                                   f"just now: {err.reason}.)")
    if info is None or info.status.stage not in ACTIVE:
        return _settle(settings, user, character, record, info, logs, token, api, sleep)
    return _running(settings, user, character, record, info, logs)


def follow(settings: Settings, user: str, character: Character, *, token: Optional[str],
           on_progress: Optional[ProgressFn] = None, api: Any = None,
           sleep: Sleep = time.sleep, poll_seconds: float = POLL_SECONDS) -> JobRecord:
    """Follow the character's job to its end, reporting its progress lines as they come, then
    settle it. Losing touch with it (no network) raises; the job itself goes on."""
    record = load_record(settings, user, character)
    if record is None:
        raise ValueError(f"{character.name} has no training job on Hugging Face Jobs")
    if not token:
        raise JobsUnavailable("no_token", "following the job needs your Hugging Face sign-in "
                              "(or, on the command line, HF_TOKEN)")
    if record.settled:
        return status(settings, user, character, token=token, api=api, sleep=sleep) or record
    api = api if api is not None else hub_calls.hf_api()
    logs, streamed = _Logs(on_progress), False
    while True:
        try:
            info = _inspect(api, record, token, sleep)
        except HubCallFailed as err:
            raise RuntimeError(f"lost touch with the training job ({err.reason}); it goes on "
                               "without us: look at it again later") from None
        if info is None or info.status.stage not in ACTIVE:
            break
        if streamed:  # the log stream ended (or broke) before the job did
            sleep(poll_seconds)
        elif on_progress is not None:
            on_progress(Progress(record.checkpoint_step, total_steps(record), "step",
                                 message="waiting for a GPU on Hugging Face Jobs"))
        try:
            call_hub(lambda: logs.read(api.fetch_job_logs(
                job_id=record.job_id, namespace=record.namespace, follow=True, token=token)),
                sleep, attempts=1)
        except HubCallFailed as err:
            log.warning("the job's log stream broke (%s); looking again", err.reason)
        streamed = True
    return _settle(settings, user, character, record, info, logs, token, api, sleep)


def cancel(settings: Settings, user: str, character: Character, *, token: Optional[str],
           api: Any = None, sleep: Sleep = time.sleep) -> JobRecord:
    """Cancel the character's running job; it is settled at once (photos gone, checkpoint
    kept), whatever the job still does while it stops."""
    record = load_record(settings, user, character)
    if record is None or not record.active:
        raise ValueError(f"{character.name} has no training job running on Hugging Face Jobs")
    if not token:
        raise JobsUnavailable("no_token", "cancelling the job needs your Hugging Face sign-in "
                              "(or, on the command line, HF_TOKEN)")
    api = api if api is not None else hub_calls.hf_api()
    try:
        call_hub(lambda: api.cancel_job(job_id=record.job_id, namespace=record.namespace,
                                        token=token), sleep)
        info = _inspect(api, record, token, sleep)
    except HubCallFailed as err:
        raise RuntimeError(f"the job could not be cancelled: {err.reason}") from None
    if info is not None and info.status.stage == "COMPLETED":  # it finished first
        return _settle(settings, user, character, record, info, None, token, api, sleep)
    return _settle(settings, user, character, record, info, None, token, api, sleep,
                   cancelled=True)


class _Logs:
    """What a job's log lines said: the last progress, the result, the error; each progress
    line goes on to `on_progress`. A stream read again from its start skips the lines seen."""

    def __init__(self, on_progress: Optional[ProgressFn] = None):
        self.on_progress = on_progress
        self.count = 0
        self.progress: Optional[Progress] = None
        self.result: Optional[dict] = None
        self.error = ""

    def read(self, lines) -> None:
        seen = self.count
        for number, line in enumerate(lines, start=1):
            if number > seen:
                self.count = number
                self.feed(line)

    def feed(self, line: str) -> None:
        parsed = parse(line)
        if parsed is None:
            return
        kind, payload = parsed
        if kind == "progress":
            self.progress = payload
            if self.on_progress is not None:
                self.on_progress(payload)
        elif kind == "result":
            self.result = payload
        else:
            self.error = payload


def _read_back(api: Any, record: JobRecord, token: str, sleep: Sleep) -> _Logs:
    """The last LOG_TAIL lines of a job, read without waiting for more."""
    logs = _Logs()
    try:
        call_hub(lambda: logs.read(api.fetch_job_logs(
            job_id=record.job_id, namespace=record.namespace, follow=False, tail=LOG_TAIL,
            token=token)), sleep)
    except HubCallFailed as err:
        if err.kind != "not_found":
            raise
    return logs


def _inspect(api: Any, record: JobRecord, token: str, sleep: Sleep):
    """The job's JobInfo, or None when Hugging Face no longer knows it."""
    try:
        return call_hub(lambda: api.inspect_job(job_id=record.job_id, namespace=record.namespace,
                                                token=token), sleep)
    except HubCallFailed as err:
        if err.kind == "not_found":
            return None
        raise


def _running(settings: Settings, user: str, character: Character, record: JobRecord, info,
             logs: _Logs) -> JobRecord:
    progress = logs.progress or record.last_progress()
    label = record.flavor["label"]
    if info.status.stage == "SCHEDULING":
        state, text = "scheduling", f"The job is waiting for a GPU ({label}) on Hugging Face Jobs."
    else:
        state = "running"
        text = (f"{character.name} is training on Hugging Face Jobs ({label})"
                + (f": {progress.describe()}." if progress else ", starting."))
    record = dataclasses.replace(record, state=state, message=text,
                                 progress=asdict(progress) if progress else None,
                                 seconds_running=_seconds_running(info, record))
    save_record(settings, user, character, record)
    return record


def _settle(settings: Settings, user: str, character: Character, record: JobRecord, info,
            logs: Optional[_Logs], token: str, api: Any, sleep: Sleep, *,
            cancelled: bool = False) -> JobRecord:
    """Record how an ended job ended; bring a trained adapter here; clean the bucket. Done
    once: a second tab following the same job finds it settled."""
    with locked(job_folder(settings, user, character)):
        current = load_record(settings, user, character)
        if current is not None and current.job_id == record.job_id and current.settled:
            return current
        return _settle_now(settings, user, character, record, info, logs, token, api, sleep,
                           cancelled)


def _settle_now(settings: Settings, user: str, character: Character, record: JobRecord, info,
                logs: Optional[_Logs], token: str, api: Any, sleep: Sleep,
                cancelled: bool) -> JobRecord:
    if logs is None or (logs.result is None and not logs.error):
        try:
            logs = _read_back(api, record, token, sleep)
        except HubCallFailed:
            logs = logs or _Logs()
    progress = logs.progress or record.last_progress()
    record = dataclasses.replace(record, progress=asdict(progress) if progress else None,
                                 seconds_running=_seconds_running(info, record))
    name = character.name
    if info is not None and info.status.stage == "COMPLETED" and not cancelled:
        try:
            _bring_adapter_here(settings, user, character, token, api, sleep)
        except ValueError as err:  # the adapter can't be fetched now: try again next time
            record = dataclasses.replace(record, state="succeeded", message=(
                f"The job finished, but {name}'s adapter could not be brought to this "
                f"machine yet: {err}. Look at the job again later."))
            save_record(settings, user, character, record)
            return record
        result = logs.result or {}
        _remember_speed(settings, record, result.get("seconds_per_step"))
        cleaned = _quietly(lambda: private.delete_bucket(api, record.bucket, token, sleep))
        repo = result.get("repo_id") or ""
        record = dataclasses.replace(
            record, state="succeeded", settled=True, cleaned=cleaned, repo_id=repo,
            revision=result.get("revision") or "", checkpoint_step=0,
            message=f"{name} is trained: the job on {record.flavor['label']} finished"
                    + (f" after {result['step']} steps" if result.get("step") else "")
                    + f"; the adapter is in your private repo {repo or 'on the Hub'} and on this "
                      f"machine, and {photos_deleted(cleaned)}.")
    else:
        state, why = _how_it_ended(record, info, logs, cancelled)
        cleaned = _quietly(lambda: private.delete_photos(api, record.bucket, token, sleep))
        step = _checkpoint_step(api, record, token, sleep)
        kept = (f"its progress (step {step} of {total_steps(record)}) stays in your private "
                "bucket, so training on Jobs again continues from there" if step else
                "training again starts from the beginning")
        record = dataclasses.replace(record, state=state, settled=True, cleaned=cleaned,
                                     checkpoint_step=step, message=(
                                         f"{why} {name} is as it was before; {kept}, and "
                                         f"{photos_deleted(cleaned)}."))
    save_record(settings, user, character, record)
    return record


def _cleaned(settings: Settings, user: str, character: Character, record: JobRecord,
             token: str, api: Any, sleep: Sleep) -> JobRecord:
    """Delete again what a settled job left in the bucket, when that failed before."""
    if record.state == "succeeded":
        cleaned = _quietly(lambda: private.delete_bucket(api, record.bucket, token, sleep))
    else:
        cleaned = _quietly(lambda: private.delete_photos(api, record.bucket, token, sleep))
    if cleaned:
        record = dataclasses.replace(record, cleaned=True, message=record.message.replace(
            photos_deleted(False), photos_deleted(True)))
        save_record(settings, user, character, record)
    return record


def _checkpoint_step(api: Any, record: JobRecord, token: str, sleep: Sleep) -> int:
    try:
        return private.checkpoint_step(api, record.bucket, token, sleep)
    except HubCallFailed as err:
        log.warning("could not read the bucket's checkpoint step: %s", err.reason)
        return record.checkpoint_step


def _how_it_ended(record: JobRecord, info, logs: _Logs, cancelled: bool) -> tuple[str, str]:
    """The state of a job that did not succeed, and why in plain words."""
    name = record.character
    if cancelled or (info is not None and info.status.stage == "CANCELED"):
        return "cancelled", f"The training job for {name} was cancelled."
    if info is None or info.status.stage == "DELETED":
        return "vanished", (f"The training job for {name} can no longer be found on Hugging "
                            "Face (it was deleted, or it belongs to another account).")
    message = (info.status.message or "").strip()
    ran = _seconds_running(info, record) or 0
    if ran >= 0.98 * record.timeout_seconds or "timeout" in message.lower().replace(" ", ""):
        return "timed_out", (f"The training job for {name} ran past its time limit "
                             f"({format_seconds(record.timeout_seconds)}) and was stopped.")
    why = logs.error or message or "it stopped with an error"
    return "failed", f"The training job for {name} failed: {why.rstrip('.')}."


def _bring_adapter_here(settings: Settings, user: str, character: Character, token: str,
                        api: Any, sleep: Sleep) -> None:
    """The adapter the job pushed, into the local store in place of any older one (which
    comes back if the download fails)."""
    folder = CharacterStore(settings, user).adapter_dir(character)
    previous = folder.with_name(f".{folder.name}.previous-{os.getpid()}")
    if folder.exists():
        os.rename(folder, previous)
    try:
        ensure_local_adapter(settings, user, character, token, api=api, sleep=sleep)
    except BaseException:
        if previous.exists() and not folder.exists():
            os.rename(previous, folder)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def _remember_speed(settings: Settings, record: JobRecord, seconds: Any) -> None:
    """The step time the job measured, for the next estimate on this flavor."""
    if isinstance(seconds, (int, float)) and seconds > 0:
        flavor = Flavor(**record.flavor)
        record_step_time(settings, flavor.hardware(), TrainConfig.from_dict(record.config),
                         float(seconds))


def _seconds_running(info, record: JobRecord) -> Optional[int]:
    durations = getattr(info, "durations", None) if info is not None else None
    seconds = getattr(durations, "running_secs", None)
    return seconds if isinstance(seconds, int) else record.seconds_running


def _quietly(fn: Callable[[], None]) -> bool:
    try:
        fn()
        return True
    except HubCallFailed as err:
        log.warning("bucket clean-up failed, to be tried again: %s", err.reason)
        return False


