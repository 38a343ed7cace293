"""The job's own side: what `python -m pipeline job-train BUCKET` does inside a Hugging Face Job.

It takes the character and the run's config from the private bucket into a scratch folder,
trains with the same `train_character` as everywhere else (a checkpoint back to the bucket
every few minutes, so a failed or stopped job loses little), pushes the adapter to the
character's private model repo with `push_adapter` (model card included), and deletes the
photos from the bucket however it ends (the whole bucket once the character is trained).
Everything the app needs is printed as `lines` (progress, result, error); the token comes from
the job's secrets (HF_TOKEN) and is never printed.

Under `accelerate launch` (a flavor with several GPUs) every process runs this; the first takes
the files in before the others read them, and only it talks to the Hub and prints.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..adapter_files import CHECKPOINT_DIR
from ..characters import Character, CharacterStore
from ..hardware import detect
from ..hub import calls as hub_calls
from ..hub.calls import HubCallFailed, Sleep
from ..hub.repos import push_adapter
from ..progress import Progress
from ..settings import Settings
from ..store import StoreError, read_json
from ..training.checkpoint import PROGRESS_FILE
from ..training.config import TrainConfig
from ..training.estimate import step_seconds
from ..training.trainer import TrainResult, train_character
from . import bucket as private
from .lines import error_line, progress_line, result_line

log = logging.getLogger(__name__)
SCRATCH = "taleweaver-job"  # the job's data folder, under its temporary folder
PROGRESS_EVERY_SECONDS = 5.0  # at most one progress line this often (and at each change of unit)

Emit = Callable[[str], None]


class JobTrainingError(RuntimeError):
    """A job can't train or publish; the message says why in plain words."""


def run_job_training(settings: Settings, bucket_id: str, token: Optional[str], *,
                     checkpoint_steps: int, emit: Emit, api: Any = None,
                     sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Train the character waiting in `bucket_id` and push its adapter; returns the result
    (also printed with `emit` as a result line). Failures are printed as an error line, then
    raised."""
    main = int(os.environ.get("RANK", "0")) == 0
    if not token:
        raise _said(emit, main, JobTrainingError("the job has no Hugging Face token (the HF_TOKEN "
                                                 "secret is missing)"))
    api = api if api is not None else hub_calls.hf_api()
    settings = dataclasses.replace(settings, data_dir=Path(tempfile.gettempdir()) / SCRATCH)
    store = CharacterStore(settings, settings.local_user)
    trained = False
    try:
        with _stop_on_sigterm():
            with _main_process_first(settings):
                if main:
                    shutil.rmtree(settings.data_dir, ignore_errors=True)
                    private.download_run(api, bucket_id, token, store, sleep)
            character = store.list()[0]
            # No validation image in a job: its folder is thrown away and the push leaves the
            # picture out, so it would be GPU time (the parent's money) for nothing.
            config = dataclasses.replace(private.run_config(store, character), validation="off")
            if main:
                resumed = _resumed_at(store, character)
                emit(progress_line(Progress(resumed, config.steps, "step", message=(
                    f"continuing from step {resumed}; " if resumed else "")
                    + "loading the base model")))
            result = _train(settings, character.name, config, checkpoint_steps,
                            _reporter(emit) if main else None,
                            lambda: private.upload_checkpoint(
                                api, bucket_id, token, store.path(character, CHECKPOINT_DIR),
                                sleep) if main else None)
            if not main:
                return {}
            pushed = push_adapter(settings, settings.local_user, character, token, api=api,
                                  sleep=sleep)
            if pushed.status != "pushed":
                raise JobTrainingError(
                    f"the trained adapter could not be uploaded to your private repo "
                    f"({pushed.reason}); training again only uploads it, from the checkpoint "
                    "kept in the private bucket")
            trained = True
            hardware = detect(settings)
            per_step, source = step_seconds(settings, hardware, config)
    except SystemExit:
        raise _said(emit, main, JobTrainingError(
            "the job was stopped (cancelled, or past its time limit)")) from None
    except HubCallFailed as err:
        raise _said(emit, main, JobTrainingError(
            f"a call to Hugging Face failed: {err.reason}")) from None
    except Exception as err:
        _said(emit, main, err)
        raise
    finally:
        if main:
            _clean_up(api, bucket_id, token, trained, sleep)
            shutil.rmtree(settings.data_dir, ignore_errors=True)
    outcome = {"character": character.name, "step": result.step, "total": result.total,
               "loss": result.loss, "repo_id": pushed.repo_id, "revision": pushed.revision,
               "seconds_per_step": per_step if source == "measured" else None,
               "gpu": hardware.name}
    emit(result_line(outcome))
    return outcome


def _train(settings: Settings, name: str, config: TrainConfig, checkpoint_steps: int,
           report: Optional[Callable[[Progress], None]],
           save: Callable[[], None]) -> TrainResult:
    """train_character in chunks of `checkpoint_steps`, calling `save` after each chunk."""
    while True:
        result = train_character(settings, settings.local_user, name, config,
                                 chunk_steps=checkpoint_steps, max_chunks=1, on_progress=report)
        if result.chunks and not result.done:  # a finished run leaves no checkpoint to save
            save()
        if result.done:
            return result


def _resumed_at(store: CharacterStore, character: Character) -> int:
    """The step of the checkpoint that came from the bucket (0 without one)."""
    try:
        step = read_json(store.path(character, CHECKPOINT_DIR) / PROGRESS_FILE).get("step")
    except (StoreError, AttributeError):
        return 0
    return step if isinstance(step, int) and step > 0 else 0


def _said(emit: Emit, main: bool, err: Exception) -> Exception:
    """Print the error as the app will read it (an error line); returns it, to raise."""
    if main:
        known = isinstance(err, (ValueError, RuntimeError, OSError))
        emit(error_line(str(err) if known else f"{type(err).__name__}: {err}"))
    return err


def _reporter(emit: Emit) -> Callable[[Progress], None]:
    """A ProgressFn printing progress lines: the first, each change of unit, each message,
    the last step, and otherwise one every PROGRESS_EVERY_SECONDS."""
    last = {"at": 0.0, "unit": ""}

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if (progress.unit != last["unit"] or progress.done >= progress.total
                or now - last["at"] >= PROGRESS_EVERY_SECONDS or progress.message):
            last.update(at=now, unit=progress.unit)
            emit(progress_line(progress))

    return report


def _clean_up(api: Any, bucket_id: str, token: str, trained: bool, sleep: Sleep) -> None:
    """The photos leave the bucket; once trained, the whole bucket goes. A failure here is
    left to the app, which cleans up when it sees the job has ended."""
    try:
        if trained:
            private.delete_bucket(api, bucket_id, token, sleep)
        else:
            private.delete_photos(api, bucket_id, token, sleep)
    except HubCallFailed as err:
        log.warning("the photos' training copy could not be deleted yet (%s); the app deletes "
                    "it when it sees this job has ended", err.reason)


@contextlib.contextmanager
def _main_process_first(settings: Settings) -> Iterator[None]:
    """Under `accelerate launch`, the first process runs the block before the others."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState(cpu=detect(settings).device == "cpu").main_process_first():
        yield


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """A cancelled job gets SIGTERM: raise SystemExit, so the photos still leave the bucket."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
