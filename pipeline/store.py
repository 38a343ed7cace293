"""The on-disk layout per user, safe names, atomic writes and locking.

    <data_dir>/users/<user>/characters/<slug>/...   one folder per character
    <data_dir>/users/<user>/books/<book id>/...     one folder per book
    <data_dir>/users/<user>/class_images/<kind>/... prior-preservation images, shared by kind

Everything a user types (character names, titles) becomes at most a slug; every path is built
by `inside`, which refuses to leave the user's folder. Files are written to a temporary name
and renamed into place, so a crash never leaves a half-written record.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .settings import Settings

_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class StoreError(ValueError):
    """A stored record is missing or unreadable, or a name is unsafe; the message says which."""


def user_dir(settings: Settings, user: str) -> Path:
    """The folder of one user (created if needed); user names are Hugging Face user names."""
    if not _USER_RE.fullmatch(user or "") or ".." in user:
        raise StoreError(f"user name {user!r} is not allowed: use letters, digits, '-', '_', '.'")
    path = settings.data_dir / "users" / user
    path.mkdir(parents=True, exist_ok=True)
    return path


def inside(root: Path, *parts: str) -> Path:
    """root/parts..., refusing any result that is not strictly inside root."""
    path = root.joinpath(*parts)
    resolved, base = path.resolve(), root.resolve()
    if resolved == base or base not in resolved.parents:
        raise StoreError(f"{'/'.join(parts)!r} is not a valid name here")
    return path


def slugify(text: str, max_length: int = 40) -> str:
    """A lowercase ASCII folder name for free text: "Zoë's Cat" -> "zoes-cat".

    Text with no ASCII letters or digits at all (e.g. "小明") gets a stable hash-based slug.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ascii_text = re.sub(r"['’`]", "", ascii_text.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:max_length].strip("-")
    if not slug:
        slug = "x-" + hashlib.sha256(text.encode()).hexdigest()[:10]
    return slug


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path so that readers see the old file or the new one, never a part."""
    with atomic_writer(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through, streamed (no copy of the whole in memory): it
    replaces `path` only when the block ends without error, so readers never see a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, record: Any) -> None:
    atomic_write_bytes(path, json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8"))


def read_json(path: Path) -> Any:
    """Read a JSON record; a missing or damaged one is a StoreError naming the file by its
    folder and name only ("mia/character.json"): the message may reach the app's users."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path.parent.name}/{path.name} not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"{path.parent.name}/{path.name} is damaged and can't be read ({err})") \
            from None


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Build a new folder under a temporary name and rename it to `final` only on success.

    If the body raises, the temporary folder is removed and `final` never appears.
    """
    if final.exists():
        raise StoreError(f"{final.name} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_tree(path: Path) -> None:
    """Delete a folder: renamed aside first, so a crash mid-way leaves no half-deleted record."""
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.deleting-{os.getpid()}")
    os.rename(path, trash)
    shutil.rmtree(trash)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a folder (two browser tabs of one user changing one record)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
