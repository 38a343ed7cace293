"""The private place a character's photos travel through on their way to a job: a private
storage bucket in the user's own namespace, one per character.

    <namespace>/taleweaver-<slug>-training
        photos/character.json      the Character record (name, kind, trigger, crops)
        photos/crops/NN.png        the kept square crops, nothing else of the photos
        photos/train.json          the TrainConfig of the run
        checkpoint/state.pt        the job's training state, saved every few minutes
        checkpoint/progress.json   its step, for estimates

A bucket, not a private dataset repo: a bucket keeps no history, so a deleted photo is gone,
where a repo's git history keeps every photo ever committed until the whole repo goes; and the
job saves its checkpoints there as plain files rather than as commits. `photos/` is deleted
when the job ends, however it ends; `checkpoint/` stays until the character is trained, so a
second job continues where a stopped one was; then the whole bucket is deleted.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ..adapter_files import CHECKPOINT_DIR
from ..characters import RECORD, Character, CharacterStore
from ..hub.calls import HubCallFailed, Sleep, call_hub
from ..hub.repos import REPO_PREFIX
from ..store import StoreError, atomic_write_json, read_json, remove_tree, staged_dir
from ..training.checkpoint import PROGRESS_FILE, STATE_FILE
from ..training.config import TrainConfig

PHOTOS = "photos"
CHECKPOINT = "checkpoint"
RUN_FILE = "train.json"
CHECKPOINT_FILES = (STATE_FILE, PROGRESS_FILE)


class PublicBucket(ValueError):
    """The bucket exists and is public: no photo may go there."""


def bucket_id_for(namespace: str, character: Character) -> str:
    """<namespace>/taleweaver-<slug>-training: the character's private bucket."""
    return f"{namespace}/{REPO_PREFIX}{character.slug}-training"


def open_bucket(api: Any, bucket_id: str, token: str, sleep: Sleep = time.sleep) -> None:
    """Create the bucket private (or find it); PublicBucket if it exists and is public."""
    call_hub(lambda: api.create_bucket(bucket_id, private=True, exist_ok=True, token=token), sleep)
    info = call_hub(lambda: api.bucket_info(bucket_id, token=token), sleep)
    if not info.private:
        raise PublicBucket(f"the storage bucket {bucket_id} exists and is public, and "
                           "Taleweaver only puts photos into private buckets; make it private "
                           "or delete it")


def upload_photos(api: Any, bucket_id: str, token: str, store: CharacterStore,
                  character: Character, config: TrainConfig, *, with_checkpoint: bool = False,
                  sleep: Sleep = time.sleep) -> None:
    """The character's record, its crops and the run's config into photos/ (and, when asked,
    the checkpoint of a run started on this machine into checkpoint/, for the job to go on
    from if it fits)."""
    add: list[tuple[Any, str]] = [
        (json.dumps(character.to_json(), ensure_ascii=False).encode("utf-8"),
         f"{PHOTOS}/{RECORD}"),
        (json.dumps(config.to_dict()).encode("utf-8"), f"{PHOTOS}/{RUN_FILE}")]
    add += [(str(store.path(character, crop.file)), f"{PHOTOS}/{crop.file}")
            for crop in character.crops]
    if with_checkpoint:
        folder = store.path(character, CHECKPOINT_DIR)
        add += [(str(folder / name), f"{CHECKPOINT}/{name}") for name in CHECKPOINT_FILES
                if (folder / name).is_file()]
    call_hub(lambda: api.batch_bucket_files(bucket_id, add=add, token=token), sleep)


def upload_checkpoint(api: Any, bucket_id: str, token: str, folder: Path,
                      sleep: Sleep = time.sleep) -> None:
    """A job's checkpoint folder into checkpoint/ (the state first, its step last)."""
    add = [(str(folder / name), f"{CHECKPOINT}/{name}") for name in CHECKPOINT_FILES
           if (folder / name).is_file()]
    call_hub(lambda: api.batch_bucket_files(bucket_id, add=add, token=token), sleep)


def has_checkpoint(api: Any, bucket_id: str, token: str, sleep: Sleep = time.sleep) -> bool:
    return bool(_files(api, bucket_id, token, CHECKPOINT, sleep))


def download_run(api: Any, bucket_id: str, token: str, store: CharacterStore,
                 sleep: Sleep = time.sleep) -> Character:
    """The character (record, crops, run config, and the checkpoint if there is one) from the
    bucket into `store`, replacing any copy there: what a job trains."""
    with tempfile.TemporaryDirectory() as scratch:
        record_path = Path(scratch) / RECORD
        call_hub(lambda: api.download_bucket_files(
            bucket_id, [(f"{PHOTOS}/{RECORD}", str(record_path))], raise_on_missing_files=True,
            token=token), sleep)
        try:
            character = Character.from_json(read_json(record_path))
        except (KeyError, TypeError) as err:
            raise StoreError(f"the bucket's {PHOTOS}/{RECORD} is damaged ({err})") from None
    folder = store.folder(character)
    remove_tree(folder)  # a fresh machine has none; a rerun in the same place starts clean
    with staged_dir(folder) as tmp:
        files = [(f"{PHOTOS}/{RUN_FILE}", str(tmp / RUN_FILE))]
        files += [(f"{PHOTOS}/{crop.file}", str(_inside(tmp, crop.file)))
                  for crop in character.crops]
        files += [(f"{CHECKPOINT}/{name}", str(tmp / CHECKPOINT_DIR / name))
                  for name in _files(api, bucket_id, token, CHECKPOINT, sleep)
                  if name in CHECKPOINT_FILES]
        for _, local in files:
            Path(local).parent.mkdir(parents=True, exist_ok=True)
        call_hub(lambda: api.download_bucket_files(bucket_id, files, raise_on_missing_files=True,
                                                   token=token), sleep)
        atomic_write_json(tmp / RECORD, character.to_json())
    run_config(store, character)  # a damaged config fails here, before any model loads
    return character


def run_config(store: CharacterStore, character: Character) -> TrainConfig:
    """The TrainConfig that came with the character from the bucket."""
    try:
        return TrainConfig.from_dict(read_json(store.path(character, RUN_FILE)))
    except TypeError as err:
        raise StoreError(f"the bucket's {PHOTOS}/{RUN_FILE} is damaged ({err})") from None


def checkpoint_step(api: Any, bucket_id: str, token: str, sleep: Sleep = time.sleep) -> int:
    """The step of the checkpoint kept in the bucket (0 when there is none)."""
    if PROGRESS_FILE not in _files(api, bucket_id, token, CHECKPOINT, sleep):
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / PROGRESS_FILE
        call_hub(lambda: api.download_bucket_files(
            bucket_id, [(f"{CHECKPOINT}/{PROGRESS_FILE}", str(path))], token=token), sleep)
        try:
            step = read_json(path).get("step")
        except (StoreError, AttributeError):
            return 0
    return step if isinstance(step, int) and step > 0 else 0


def delete_photos(api: Any, bucket_id: str, token: str, sleep: Sleep = time.sleep) -> None:
    """Delete photos/ (the record, the crops and the config); a missing bucket is fine."""
    names = _files(api, bucket_id, token, PHOTOS, sleep)
    if names:
        call_hub(lambda: api.batch_bucket_files(
            bucket_id, delete=[f"{PHOTOS}/{name}" for name in names], token=token), sleep)


def delete_bucket(api: Any, bucket_id: str, token: str, sleep: Sleep = time.sleep) -> None:
    """Delete the whole bucket (the character is trained: nothing in it is needed any more)."""
    call_hub(lambda: api.delete_bucket(bucket_id, missing_ok=True, token=token), sleep)


def _files(api: Any, bucket_id: str, token: str, folder: str, sleep: Sleep) -> list[str]:
    """The files under folder/ (their paths below it); none when the bucket is gone."""
    try:
        items = call_hub(lambda: list(api.list_bucket_tree(bucket_id, prefix=folder,
                                                           recursive=True, token=token)), sleep)
    except HubCallFailed as err:
        if err.kind == "not_found":
            return []
        raise
    start = folder + "/"
    return [item.path[len(start):] for item in items
            if getattr(item, "type", "") == "file" and item.path.startswith(start)]


def _inside(folder: Path, relative: str) -> Path:
    """folder/relative for a crop named in a downloaded record, never outside folder."""
    path = (folder / relative).resolve()
    if folder.resolve() not in path.parents:
        raise StoreError(f"the bucket's {PHOTOS}/{RECORD} names a crop outside its folder")
    return folder / relative
