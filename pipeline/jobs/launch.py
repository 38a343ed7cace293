"""Starting a character's training job in the user's own account: the photos into the private
bucket, then `run_job` with our own CLI as the command, the user's token as a secret (never in
the command, the labels or the logs), a time limit from the estimate, and the image of this
very app. Starting is never retried, so a lost answer never starts a second job.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from huggingface_hub import constants

from ..adapter_files import CHECKPOINT_DIR
from ..characters import Character, CharacterStore
from ..hub import calls as hub_calls
from ..hub.calls import KINDS, HubCallFailed, Sleep, call_hub, whoami
from ..settings import Settings
from ..store import locked
from ..training.checkpoint import STATE_FILE
from ..training.config import TrainConfig
from . import bucket as private
from .flavors import Flavor, JobPlan, list_flavors
from .record import JobRecord, job_folder, load_record, photos_deleted, save_record

UNAVAILABLE = ("no_token", "offline", "no_image", "public_bucket") + KINDS


class JobsUnavailable(ValueError):
    """Training on Hugging Face Jobs can't start: `reason` (one of UNAVAILABLE) for code, the
    message for people; each door adds how to train here instead."""

    def __init__(self, reason: str, message: str):
        if reason not in UNAVAILABLE:
            raise ValueError(f"reason {reason!r} is not one of {', '.join(UNAVAILABLE)}")
        super().__init__(message)
        self.reason = reason


def job_image(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """The image a job runs: TALEWEAVER_JOB_IMAGE, else this Space's own (the same code and
    dependencies as the app)."""
    if settings.job_image:
        return settings.job_image
    if environ.get("SPACE_ID"):
        return f"hf.co/spaces/{environ['SPACE_ID']}"
    raise JobsUnavailable("no_image", "this app does not run on a Hugging Face Space, so there is "
                          "no image with Taleweaver in it for the job: set TALEWEAVER_JOB_IMAGE "
                          "(e.g. to your own copy of the Space, hf.co/spaces/<you>/taleweaver)")


def available_flavors(token: Optional[str], *, api: Any = None,
                      sleep: Sleep = time.sleep) -> list[Flavor]:
    """The GPU hardware Jobs offers now, with prices; JobsUnavailable without a token (a job
    runs in the user's own account) or when the Hub can't say."""
    if not token:
        raise JobsUnavailable("no_token", "Hugging Face Jobs run in your own account: they need "
                              "your Hugging Face sign-in (or, on the command line, HF_TOKEN)")
    try:
        return list_flavors(api if api is not None else hub_calls.hf_api(), token, sleep)
    except HubCallFailed as err:
        raise _unavailable(err, "the list of its hardware could not be read", "run Jobs") from None


def job_command(bucket_id: str, plan: JobPlan) -> list[str]:
    """Our own CLI, under accelerate on every GPU of a flavor with several."""
    train = ["-m", "pipeline", "job-train", bucket_id,
             "--checkpoint-steps", str(plan.checkpoint_steps)]
    if plan.flavor.gpus == 1:
        return ["python", *train]
    return ["accelerate", "launch", "--multi_gpu", "--num_processes", str(plan.flavor.gpus),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *train]


def job_environment(settings: Settings) -> dict[str, str]:
    """The settings the adapter is recorded with, so it counts as trained here, and the
    classifier its validation image must pass."""
    return {"TALEWEAVER_BASE_MODEL": settings.base_model, "TALEWEAVER_VAE": settings.vae,
            "TALEWEAVER_RESOLUTION": str(settings.resolution),
            "TALEWEAVER_SAFETY_MODEL": settings.safety_model}


def start(settings: Settings, user: str, character: Character, config: TrainConfig,
          plan: JobPlan, *, token: Optional[str], api: Any = None, sleep: Sleep = time.sleep,
          environ: Mapping[str, str] = os.environ) -> JobRecord:
    """Put the photos in the private bucket and start the job (or return the one still
    running). JobsUnavailable says why a job can't start; the photos never stay behind then."""
    if not token:
        raise JobsUnavailable("no_token", "training on Hugging Face Jobs needs your Hugging Face "
                              "sign-in (or, on the command line, HF_TOKEN): the job runs in your "
                              "account, billed to it")
    if constants.is_offline_mode():
        raise JobsUnavailable("offline", "the Hub is switched off here (offline mode), so no job "
                              "can start")
    image = job_image(settings, environ)
    api = api if api is not None else hub_calls.hf_api()
    with locked(job_folder(settings, user, character)):
        running = load_record(settings, user, character)
        if running is not None and running.active:
            return running
        store = CharacterStore(settings, user)
        try:
            namespace = whoami(api, token, sleep)
        except HubCallFailed as err:
            raise _unavailable(err, "your Hugging Face account could not be checked",
                               "read your account") from None
        bucket_id = private.bucket_id_for(namespace, character)
        try:
            private.open_bucket(api, bucket_id, token, sleep)
            local = (store.path(character, CHECKPOINT_DIR) / STATE_FILE).is_file()
            private.upload_photos(api, bucket_id, token, store, character, config, sleep=sleep,
                                  with_checkpoint=local and not private.has_checkpoint(
                                      api, bucket_id, token, sleep))
        except private.PublicBucket as err:
            raise JobsUnavailable("public_bucket", str(err)) from None
        except HubCallFailed as err:
            _take_photos_back(settings, user, character, api, bucket_id, token, sleep)
            raise _unavailable(err, "the photos could not go to a private storage bucket in your "
                                    "account", "create storage buckets")
        try:
            info = call_hub(lambda: api.run_job(
                image=image, command=job_command(bucket_id, plan),
                env=job_environment(settings), secrets={"HF_TOKEN": token},
                flavor=plan.flavor.name, timeout=plan.timeout_seconds,
                name=f"taleweaver-{character.slug}",
                labels={"app": "taleweaver", "character": character.slug},
                namespace=namespace, token=token), sleep, attempts=1)
        except HubCallFailed as err:
            _take_photos_back(settings, user, character, api, bucket_id, token, sleep)
            raise _unavailable(err, "the job could not start", "run Jobs")
        record = JobRecord(
            character=character.name, job_id=info.id, namespace=namespace, url=info.url,
            bucket=bucket_id, flavor=asdict(plan.flavor), config=config.to_dict(),
            started=_now(),
            timeout_seconds=plan.timeout_seconds, plan=plan.describe(),
            message=f"The job is starting on {plan.flavor.label}: waiting for a GPU.")
        save_record(settings, user, character, record)
    return record


def _take_photos_back(settings: Settings, user: str, character: Character, api: Any,
                      bucket_id: str, token: str, sleep: Sleep) -> None:
    """After a failed start: the photos leave the bucket again. If even that fails, a settled
    record of the failed start remembers it, and the next look at the job deletes them."""
    try:
        private.delete_photos(api, bucket_id, token, sleep)
    except HubCallFailed:
        save_record(settings, user, character, JobRecord(
            character=character.name, job_id="", namespace="", url="", bucket=bucket_id,
            flavor={}, config={}, started=_now(), timeout_seconds=0, state="failed",
            settled=True, message=f"The job could not start; {photos_deleted(False)}."))


def _unavailable(err: HubCallFailed, what: str, permission: str) -> JobsUnavailable:
    """Why Jobs can't be used now, for people; a 403 means the sign-in lacks a permission."""
    why = err.reason
    if err.kind == "forbidden":
        why = (f"Hugging Face did not allow it with this sign-in (403 Forbidden): Taleweaver "
               f"needs the permission to {permission} in your account (sign out, sign in again "
               f"and allow it; a token needs that permission too)")
    return JobsUnavailable(err.kind, f"training on Hugging Face Jobs isn't possible now: {what}: "
                                     f"{why}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
