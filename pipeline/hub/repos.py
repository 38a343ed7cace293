"""Each character's adapter in a private Hub repo in the user's own namespace, and back.

    <namespace>/taleweaver-<character slug>   a private model repo holding PUBLISHED files

Every public function takes the user's token explicitly: the app passes the token from Sign
in with Hugging Face, the CLI passes `hub_tokens.token_from_env()` (HF_TOKEN). With no token nothing is
sent at all, so the Hub client never falls back to a token found on the machine (a Space's
owner's) on a user's behalf. With no token or offline the adapter simply stays local; Hub
errors come back as a HubResult with a `reason` for code and a message saying what happened
(how to fix it is each front door's to add: the CLI names a command, the app a button), and
the local adapter is never touched by a failed upload. Retries and the sorting of Hub errors
are in hub_calls.py; whose a token is, in hub_tokens.py.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from huggingface_hub import constants

from ..adapter_files import (ADAPTER_WEIGHTS, HUB_RECORD, KOHYA_WEIGHTS, MODEL_CARD, TRAIN_CONFIG,
                             VALIDATION_IMAGE)
from ..characters import Character, CharacterStore
from ..settings import Settings
from ..store import (StoreError, atomic_write_bytes, atomic_write_json, locked, read_json,
                     remove_tree, staged_dir)
from . import calls as hub_calls
from .calls import KINDS, UNREACHABLE, HubCallFailed, Sleep, call_hub, whoami
from .model_card import render_model_card

log = logging.getLogger(__name__)

REPO_PREFIX = "taleweaver-"
# The only files that ever leave the machine (the validation image only when the user opts in).
PUBLISHED = (ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, MODEL_CARD, VALIDATION_IMAGE)
STATUSES = ("pushed", "skipped", "failed", "deleted")
REASONS = ("", "no_token", "public_repo") + KINDS  # why a push or delete did not happen


class AdapterUnavailableError(ValueError):
    """A character's adapter is neither on this machine nor fetchable; the message says why."""


class AdapterFolderError(ValueError):
    """A folder does not hold a usable adapter (no or damaged weights file)."""


@dataclass(frozen=True)
class HubResult:
    """What a push or a delete did: pushed, skipped, failed or deleted, why not (`reason`, for
    code: "no_token", "offline", "unauthorized", ...; "" when done), and a line for people."""

    status: str
    repo_id: str
    url: str
    message: str
    revision: str = ""  # the commit pushed
    reason: str = ""  # one of REASONS

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.reason not in REASONS:
            raise ValueError(f"reason {self.reason!r} is not one of {', '.join(REASONS[1:])}")
        if (self.reason == "") != (self.status in ("pushed", "deleted")):
            raise ValueError(f"a {self.status} result {'needs' if self.reason == '' else 'has no'} "
                             "reason")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HubRecord:
    """Where a local adapter is on the Hub (saved as hub.json next to it)."""

    repo_id: str
    url: str
    revision: str
    action: str  # "pushed" or "downloaded"
    at: str  # UTC time, ISO 8601
    files: tuple[str, ...]

    def to_json(self) -> dict:
        return asdict(self)


def repo_id_for(namespace: str, character: Character) -> str:
    """<namespace>/taleweaver-<slug>: the character's repo in the user's namespace."""
    return f"{namespace}/{REPO_PREFIX}{character.slug}"


def hub_record(settings: Settings, user: str, character: Character) -> HubRecord | None:
    """Where this character's local adapter was pushed to (or downloaded from), if anywhere."""
    path = CharacterStore(settings, user).adapter_dir(character) / HUB_RECORD
    if not path.is_file():
        return None
    try:
        raw = read_json(path)
        return HubRecord(**{**raw, "files": tuple(raw.get("files", ()))})
    except (StoreError, TypeError) as err:
        log.warning("ignoring unreadable %s: %s", path, err)
        return None


def push_adapter(settings: Settings, user: str, character: Character, token: str | None, *,
                 namespace: str | None = None, include_validation_image: bool = False,
                 api: Any = None, sleep: Sleep = time.sleep) -> HubResult:
    """Upload the character's adapter to its private repo with the user's own token.

    The repo is created private before anything is uploaded; only PUBLISHED files go, the
    validation image only with `include_validation_image`. `namespace` defaults to the token's
    owner (whoami); `api` is an HfApi or a stand-in. Raises AdapterUnavailableError when there
    is no adapter to push; every Hub problem is a "skipped" or "failed" result instead.
    """
    store = CharacterStore(settings, user)
    if not store.has_adapter(character):
        raise AdapterUnavailableError(_untrained(character))
    folder = store.adapter_dir(character)
    safe = f"{character.name}'s adapter is safe on this machine."
    if not token:
        return HubResult("skipped", "", "", f"Upload skipped: no Hugging Face token. {safe}",
                         reason="no_token")
    if constants.is_offline_mode():
        return HubResult("skipped", "", "", "Upload skipped: the Hub is switched off here "
                         f"(offline mode). {safe}", reason="offline")
    api = api if api is not None else hub_calls.hf_api()
    repo_id = ""
    try:
        repo_id = repo_id_for(namespace or whoami(api, token, sleep), character)
        call_hub(lambda: api.create_repo(repo_id, token=token, private=True, repo_type="model",
                                         exist_ok=True), sleep)
        info = call_hub(lambda: api.repo_info(repo_id, repo_type="model", token=token), sleep)
        if not info.private:
            return HubResult("failed", repo_id, _url(repo_id), (
                f"Not uploaded: {repo_id} already exists and is public, and Taleweaver only "
                "uploads adapters into private repos; make it private (repo settings) or delete "
                f"it, then upload again. {safe}"), reason="public_repo")
        files = _prepare_files(settings, character, folder, repo_id, include_validation_image)
        remote = call_hub(lambda: api.list_repo_files(repo_id, repo_type="model", token=token),
                          sleep)
        stale = [name for name in remote if name in PUBLISHED and name not in files]
        commit = call_hub(lambda: api.create_commit(
            repo_id, _operations(folder, files, stale), token=token, repo_type="model",
            commit_message=f"Taleweaver: {character.name}'s adapter"), sleep)
    except HubCallFailed as err:
        where = f" to {repo_id}" if repo_id else ""
        return HubResult("failed", repo_id, _url(repo_id),
                         f"Upload of {character.name}'s adapter{where} failed: {err.reason}. "
                         f"{safe}", reason=err.kind)
    _save_record(folder, HubRecord(repo_id, _url(repo_id), commit.oid, "pushed", _now(),
                                   tuple(files)))
    extra = " (with the validation image)" if VALIDATION_IMAGE in files else ""
    return HubResult("pushed", repo_id, _url(repo_id),
                     f"{character.name}'s adapter is in your private repo {repo_id}{extra}: "
                     f"{_url(repo_id)}", revision=commit.oid)


def ensure_local_adapter(settings: Settings, user: str, character: Character,
                         token: str | None = None, *, namespace: str | None = None,
                         api: Any = None, sleep: Sleep = time.sleep) -> Path:
    """The local adapter folder (holding ADAPTER_WEIGHTS), downloaded from the Hub if missing.

    A local copy always wins; otherwise the private repo is downloaded with the user's token
    into a temporary folder and installed exactly like a local repo-shaped folder
    (`install_adapter`), then kept. Raises AdapterUnavailableError naming the character.
    """
    store = CharacterStore(settings, user)
    if store.has_adapter(character):
        return store.adapter_dir(character)
    name = character.name
    if constants.is_offline_mode():
        raise AdapterUnavailableError(f"{name} has no trained adapter on this machine yet: "
                                      f"train {name} first")
    if not token:
        raise AdapterUnavailableError(
            f"{name} has no adapter on this machine: train {name} first, or sign in with "
            "Hugging Face (HF_TOKEN for the command line) to fetch it from your private repo")
    api = api if api is not None else hub_calls.hf_api()
    with locked(store.folder(character)):
        if store.has_adapter(character):
            return store.adapter_dir(character)
        repo_id = ""
        download = Path(tempfile.mkdtemp(dir=store.folder(character), prefix=".adapter-download-"))
        try:
            repo_id = repo_id_for(namespace or whoami(api, token, sleep), character)
            info = call_hub(lambda: api.repo_info(repo_id, repo_type="model", token=token), sleep)
            call_hub(lambda: api.snapshot_download(repo_id, repo_type="model", revision=info.sha,
                                                local_dir=download, token=token,
                                                allow_patterns=list(PUBLISHED)), sleep)
            folder = _install(store, character, download, "the repo")
        except HubCallFailed as err:
            if err.kind == "not_found":
                raise AdapterUnavailableError(
                    f"{name} has no trained adapter yet: train {name} first (there is none on "
                    f"this machine, and no Hub repo {repo_id} for this token)") from None
            problem = ("the Hub can't be reached" if err.kind in UNREACHABLE
                       else f"couldn't be fetched from {repo_id or 'the Hub'}")
            raise AdapterUnavailableError(
                f"{name}'s adapter isn't on this machine and {problem}: {err.reason}") from None
        except AdapterFolderError as err:
            raise AdapterUnavailableError(
                f"{name}'s Hub repo {repo_id} holds no usable adapter ({err}); push it again "
                f"from the machine that trained it, or train {name} again") from None
        finally:
            shutil.rmtree(download, ignore_errors=True)
        files = tuple(n for n in PUBLISHED if (folder / n).is_file())
        _save_record(folder, HubRecord(repo_id, _url(repo_id), info.sha or "", "downloaded",
                                       _now(), files))
        return folder


def install_adapter(settings: Settings, user: str, character: Character, source: Path) -> Path:
    """Use a folder shaped like the adapter repo (a clone, a copy) as the local adapter.

    Only PUBLISHED files are copied; the Hub download goes through this same step.
    """
    store = CharacterStore(settings, user)
    with locked(store.folder(character)):
        if store.has_adapter(character):
            raise AdapterFolderError(
                f"{character.name} already has an adapter on this machine "
                f"({store.adapter_dir(character)}); delete that folder first to replace it")
        return _install(store, character, Path(source), str(source))


def delete_hub_repo(settings: Settings, user: str, character: Character, token: str | None, *,
                    namespace: str | None = None, api: Any = None,
                    sleep: Sleep = time.sleep) -> HubResult:
    """Delete the character's Hub repo, when the user asks (deleting a character).

    The repo is the one recorded at push time, else <namespace or token owner>/taleweaver-<slug>.
    """
    not_deleted = f"{character.name}'s Hub repo was not deleted"
    if not token:
        return HubResult("skipped", "", "", f"{not_deleted}: no Hugging Face token.",
                         reason="no_token")
    if constants.is_offline_mode():
        return HubResult("skipped", "", "", f"{not_deleted}: the Hub is switched off here "
                         "(offline mode).", reason="offline")
    api = api if api is not None else hub_calls.hf_api()
    record = hub_record(settings, user, character)
    repo_id = ""
    try:
        if record and not namespace and record.repo_id.endswith("/" + REPO_PREFIX + character.slug):
            repo_id = record.repo_id
        else:
            repo_id = repo_id_for(namespace or whoami(api, token, sleep), character)
        call_hub(lambda: api.delete_repo(repo_id, token=token, repo_type="model",
                                         missing_ok=True), sleep)
    except HubCallFailed as err:
        where = f" {repo_id}" if repo_id else ""
        return HubResult("failed", repo_id, _url(repo_id),
                         f"Couldn't delete {character.name}'s Hub repo{where}: {err.reason}.",
                         reason=err.kind)
    path = CharacterStore(settings, user).adapter_dir(character) / HUB_RECORD
    path.unlink(missing_ok=True)
    return HubResult("deleted", repo_id, _url(repo_id),
                     f"Deleted {character.name}'s Hub repo {repo_id}"
                     + ("." if record else " (if it existed)."))


def _untrained(character: Character) -> str:
    return f"{character.name} has no trained adapter yet: train {character.name} first"


def _url(repo_id: str) -> str:
    return f"{constants.ENDPOINT}/{repo_id}" if repo_id else ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _prepare_files(settings: Settings, character: Character, folder: Path, repo_id: str,
                   include_validation_image: bool) -> list[str]:
    """Write the model card into the adapter folder; the names of the files to upload."""
    files = [name for name in (ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG)
             if (folder / name).is_file()]
    if include_validation_image and (folder / VALIDATION_IMAGE).is_file():
        files.append(VALIDATION_IMAGE)
    config = _train_config(folder)
    base = config.get("base_model")
    card = render_model_card(character, repo_id, base if isinstance(base, str) and base.strip()
                             else settings.base_model, config, files)
    atomic_write_bytes(folder / MODEL_CARD, card.encode("utf-8"))
    return files + [MODEL_CARD]


def _train_config(folder: Path) -> dict:
    path = folder / TRAIN_CONFIG
    if not path.is_file():
        return {}
    try:
        config = read_json(path)
    except StoreError as err:
        log.warning("model card without training settings: %s", err)
        return {}
    return config if isinstance(config, dict) else {}


def _operations(folder: Path, files: list[str], stale: list[str]) -> list:
    """Fresh commit operations (huggingface_hub mutates them, so one list per attempt)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    return ([CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
             for name in files] + [CommitOperationDelete(path_in_repo=name) for name in stale])


def _install(store: CharacterStore, character: Character, source: Path, where: str) -> Path:
    _check_weights(source / ADAPTER_WEIGHTS, where)
    final = store.adapter_dir(character)
    remove_tree(final)  # callers hold the lock and found no weights there: only leftovers
    with staged_dir(final) as tmp:
        for name in PUBLISHED:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
    return final


def _check_weights(path: Path, where: str) -> None:
    """A safetensors file: an 8-byte header length, then that many bytes of JSON. `where`
    names its folder in messages: the folder the user gave, or "the repo" for a download
    (whose temporary folder is a server path nobody should see)."""
    if not path.is_file():
        raise AdapterFolderError(f"{where} has no {path.name}: not an adapter folder")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        try:
            ok = 8 < size and 1 < length <= size - 8 and isinstance(
                json.loads(handle.read(length)), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            ok = False
    if not ok:
        raise AdapterFolderError(f"{path.name} in {where} is not a valid safetensors file")


def _save_record(folder: Path, record: HubRecord) -> None:
    atomic_write_json(folder / HUB_RECORD, record.to_json())
