"""The Character record (a person or pet of the book), the per-user store of characters, the
checks on what a parent types, and the choice of each character's trigger token.

    <user>/characters/<slug>/character.json   the record below
    <user>/characters/<slug>/crops/NN.png     square crops that training uses
    <user>/characters/<slug>/originals/NN.*   the uploads, only if the user asked to keep them
    <user>/characters/<slug>/adapter/         the trained LoRA (written by training/)
    <user>/characters/<slug>/checkpoint/      training state between chunks (training/)
"""
from __future__ import annotations

import functools
import hashlib
import logging
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Collection, Sequence

from PIL import Image

from .adapter_files import ADAPTER_DIR, ADAPTER_WEIGHTS
from .settings import Settings
from .store import (StoreError, atomic_write_json, inside, locked, read_json, remove_tree, slugify,
                    staged_dir, user_dir)

log = logging.getLogger(__name__)
RECORD = "character.json"
MAX_NAME_LENGTH = 60
MAX_KIND_LENGTH = 40
MAX_DESCRIPTION_LENGTH = 300  # it goes into every page's prompt, which CLIP cuts at 77 tokens
TRIGGER_TOKENS = Path(__file__).resolve().parent.parent / "assets" / "trigger_tokens.txt"



@dataclass(frozen=True)
class Crop:
    """One training crop: its file, and where it came from in the (upright) original photo.

    SDXL is conditioned on the original size and the crop's position, so both are kept.
    """

    file: str  # relative to the character folder, e.g. "crops/01.png"
    original_size: tuple[int, int]  # (height, width) of the photo after EXIF rotation
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) in the original photo
    source: str = ""  # the uploaded file's name, for reports only
    original: str = ""  # the kept upload, e.g. "originals/01.heic"; "" when not kept (the default)


@dataclass(frozen=True)
class Character:
    """A person or pet of the book, with the trigger token its adapter is trained on."""

    name: str
    slug: str
    kind: str
    description: str
    trigger: str
    crops: tuple[Crop, ...]
    created: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def token_phrase(self) -> str:
        """"<trigger> <kind>": how prompts refer to this character."""
        return f"{self.trigger} {self.kind}"

    @property
    def photos_key(self) -> str:
        """The photos training learns from, as "<count>:<hash>": an adapter trained on another
        set (photos added since) is out of date."""
        crops = [[crop.file, list(crop.crop_box)] for crop in self.crops]
        digest = hashlib.sha256(repr(crops).encode()).hexdigest()[:12]
        return f"{len(self.crops)}:{digest}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> "Character":
        crops = tuple(Crop(file=c["file"], original_size=tuple(c["original_size"]),
                           crop_box=tuple(c["crop_box"]), source=c.get("source", ""),
                           original=c.get("original", ""))
                      for c in record["crops"])
        return cls(name=record["name"], slug=record["slug"], kind=record["kind"],
                   description=record.get("description", ""), trigger=record["trigger"],
                   crops=crops, created=record["created"],
                   warnings=tuple(record.get("warnings", ())))


class CharacterNotFound(StoreError):
    """No character of that name for this user."""


class DamagedCharacter(StoreError):
    """A character whose record can't be read: its owner can only delete it."""


_DAMAGE = (StoreError, KeyError, TypeError, ValueError, AttributeError)  # what a bad record raises


class CharacterStore:
    """One user's characters on disk; it never reads or writes outside that user's folder."""

    def __init__(self, settings: Settings, user: str):
        self.settings = settings
        self.user = user
        self.root = user_dir(settings, user) / "characters"

    def list(self) -> list[Character]:
        """This user's characters, by name; damaged ones are left out (see `damaged`)."""
        found = [c for c in self._records() if isinstance(c, Character)]
        return sorted(found, key=lambda c: c.name.casefold())

    def damaged(self) -> list[str]:
        """The folder names of this user's characters whose record can't be read."""
        return sorted(item for item in self._records() if isinstance(item, str))

    def _records(self) -> list:
        """Each stored character: the Character, or its folder name when damaged."""
        found: list = []
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                if folder.name.startswith(".") or not folder.is_dir():
                    continue
                try:
                    character = Character.from_json(read_json(folder / RECORD))
                    check_name(character.name)
                    found.append(character)
                except _DAMAGE as err:
                    log.warning("damaged character record %s: %s", folder, err)
                    found.append(folder.name)
        return found

    def get(self, name: str) -> Character:
        """The character with this name (any case) or slug; DamagedCharacter for a damaged
        one (by its folder name, or the slug of `name`)."""
        wanted = name.strip().casefold()
        records = self._records()
        for character in records:
            if isinstance(character, Character) and wanted in (character.name.casefold(),
                                                               character.slug):
                return character
        if wanted and (wanted in records or slugify(name) in records):
            raise DamagedCharacter(f"{name}'s record is damaged and can't be read; delete "
                                   f"{name} (its photos go with it) and add it again")
        names = ", ".join(c.name for c in records if isinstance(c, Character)) or "none yet"
        raise CharacterNotFound(f"no character named {name!r}; your characters: {names}")

    def folder(self, character: Character) -> Path:
        return inside(self.root, character.slug)

    def adapter_dir(self, character: Character) -> Path:
        return inside(self.folder(character), ADAPTER_DIR)

    def has_adapter(self, character: Character) -> bool:
        return (self.adapter_dir(character) / ADAPTER_WEIGHTS).is_file()

    def path(self, character: Character, relative: str) -> Path:
        """A file of the character's, e.g. its crops: never outside its folder."""
        return inside(self.folder(character), relative)

    def create(self, name: str, kind: str, description: str, trigger: str,
               crops: Sequence[tuple[Image.Image, Crop]],
               warnings: Sequence[str] = (), *,
               originals: Sequence[tuple[Path, str]] = ()) -> Character:
        """Save a new character with its crops, all at once or not at all.

        `originals`, when given, has one (uploaded file, suffix such as ".jpg") per crop: copies
        kept because the user asked for them.
        """
        name, kind, description = name.strip(), kind.strip(), description.strip()
        check_name(name)
        check_kind(kind)
        check_description(description)
        if not crops:
            raise StoreError(f"{name}: no accepted photos to save")
        if originals and len(originals) != len(crops):
            raise ValueError("originals must have one entry per crop")
        with locked(self.root):
            existing = self.list()
            check_name_free(name, existing)
            if any(c.trigger == trigger for c in existing):
                raise StoreError(f"trigger token {trigger!r} is already used by another character")
            slug = _free_slug(slugify(name), {c.slug for c in existing}, self.root)
            with staged_dir(inside(self.root, slug)) as tmp:
                saved = _save_crops(tmp, crops, originals, first=1)
                character = Character(name=name, slug=slug, kind=kind, description=description,
                                      trigger=trigger, crops=tuple(saved),
                                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      warnings=tuple(warnings))
                atomic_write_json(tmp / RECORD, character.to_json())
        return character

    def add_crops(self, name: str, crops: Sequence[tuple[Image.Image, Crop]],
                  warnings: Sequence[str] = (), *,
                  originals: Sequence[tuple[Path, str]] = ()) -> Character:
        """Add crops (and kept originals) to a character. The new files are written first,
        under names no record uses yet, then the record in one atomic write: an interruption
        leaves the character as it was."""
        if not crops:
            raise StoreError(f"{name}: no accepted photos to add")
        if originals and len(originals) != len(crops):
            raise ValueError("originals must have one entry per crop")
        with locked(self.root):
            character = self.get(name)
            folder = self.folder(character)
            used = [int(m.group(1)) for crop in character.crops
                    if (m := re.fullmatch(r"crops/(\d+)\.png", crop.file))]
            on_disk = [int(p.stem) for p in (folder / "crops").glob("*.png") if p.stem.isdigit()]
            saved = _save_crops(folder, crops, originals, first=max(used + on_disk, default=0) + 1)
            character = replace(character, crops=character.crops + tuple(saved),
                                warnings=character.warnings + tuple(warnings))
            atomic_write_json(folder / RECORD, character.to_json())
        return character

    def update(self, name: str, *, kind: str | None = None,
               description: str | None = None) -> Character:
        """Change a character's kind or look (None keeps it); checked as when it was made."""
        with locked(self.root):
            character = self.get(name)
            if kind is not None:
                kind = " ".join(kind.split())
                check_kind(kind)
                character = replace(character, kind=kind)
            if description is not None:
                description = " ".join(description.split())
                check_description(description)
                character = replace(character, description=description)
            atomic_write_json(self.folder(character) / RECORD, character.to_json())
        return character

    def delete(self, name: str) -> Character:
        """Remove a character and everything of it: record, crops, checkpoints, adapter."""
        with locked(self.root):
            character = self.get(name)
            remove_tree(self.folder(character))
        return character

    def delete_damaged(self, name: str) -> str:
        """Remove a damaged character's folder (by its folder name, or the slug of `name`)
        with everything in it; returns the folder name."""
        with locked(self.root):
            damaged = self.damaged()
            wanted = name.strip().casefold()
            folder = wanted if wanted in damaged else slugify(name)
            if folder not in damaged:
                raise CharacterNotFound(f"no damaged character named {name!r}")
            remove_tree(inside(self.root, folder))
        return folder


def _save_crops(folder: Path, crops: Sequence[tuple[Image.Image, Crop]],
                originals: Sequence[tuple[Path, str]], first: int) -> list[Crop]:
    """Write crops/NN.png (and originals/NN.<ext> when given) from number `first` on."""
    saved = []
    for index, (image, crop) in enumerate(crops, start=first):
        relative = f"crops/{index:02d}.png"
        (folder / "crops").mkdir(exist_ok=True)
        image.convert("RGB").save(folder / relative, format="PNG")
        kept = ""
        if originals:
            source, suffix = originals[index - first]
            kept = f"originals/{index:02d}{suffix}"
            (folder / "originals").mkdir(exist_ok=True)
            shutil.copyfile(source, folder / kept)
        saved.append(Crop(relative, crop.original_size, crop.crop_box, crop.source, kept))
    return saved


def check_name(name: str) -> None:
    """A character name is free text (unicode, spaces, apostrophes) of sensible length."""
    if not name:
        raise StoreError("name is empty: give the character a name, e.g. Mia")
    if len(name) > MAX_NAME_LENGTH:
        raise StoreError(f"name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if any(not ch.isprintable() for ch in name):
        raise StoreError("name contains control characters; use letters, spaces and punctuation")


def check_kind(kind: str) -> None:
    """A kind is a short noun phrase that prompts reuse: "girl", "grandma", "golden retriever"."""
    if not re.search(r"[^\W\d_]", kind):
        raise StoreError("kind has no letters: say who this is, e.g. girl, boy, woman, man, "
                         "dog, cat")
    if len(kind) > MAX_KIND_LENGTH:
        raise StoreError(f"kind is {len(kind)} characters long; the limit is {MAX_KIND_LENGTH} "
                         "(a word or two, e.g. 'little girl')")
    if any(not ch.isprintable() for ch in kind):
        raise StoreError("kind contains control characters; use a word or two, e.g. dog")


def check_description(description: str) -> None:
    """A look description ("curly red hair, yellow raincoat") is one short line of free text."""
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise StoreError(f"description is {len(description)} characters long; the limit is "
                         f"{MAX_DESCRIPTION_LENGTH} (a few words about the look are enough)")
    if any(not ch.isprintable() for ch in description):
        raise StoreError("description contains line breaks or control characters; "
                         "write it on one line")


def check_name_free(name: str, existing: Sequence[Character]) -> None:
    """Names are unique per user, in any case ("Mia" and "MIA" are one name)."""
    if any(c.name.casefold() == name.casefold() for c in existing):
        raise StoreError(f"you already have a character named {name!r}; "
                         "choose another name or delete that one first")


def _free_slug(slug: str, taken: set[str], root: Path) -> str:
    candidate, n = slug, 2
    while candidate in taken or (root / candidate).exists():
        candidate, n = f"{slug}-{n}", n + 1
    return candidate


@functools.lru_cache(maxsize=1)
def trigger_tokens() -> tuple[str, ...]:
    """The candidate trigger tokens of assets/trigger_tokens.txt (its header says how they were made)."""
    lines = TRIGGER_TOKENS.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def choose_trigger(user: str, name: str, taken: Collection[str]) -> str:
    """A trigger token for a new character: rare, short, not a word, and unique for this user.

    Candidates come from assets/trigger_tokens.txt (made by assets/make_trigger_tokens.py):
    strings of 3-6 letters that CLIP's tokenizer (the same for both SDXL text encoders) keeps
    as one token from the rarer part of its vocabulary, that are in no word list of 27
    Latin-script languages, are not fragments of common words and contain none, and are no
    ranked first name or surname; a few more were left out by eye. So the adapter learns the
    character into a token with little meaning of its own, and a story's words never match
    it. The choice is deterministic: it starts at a position given by a hash of (user, name)
    and skips the tokens this user's other characters already have.
    """
    tokens = trigger_tokens()
    start = int.from_bytes(hashlib.sha256(f"{user}\n{name.casefold()}".encode()).digest()[:8], "big")
    for step in range(len(tokens)):
        token = tokens[(start + step) % len(tokens)]
        if token not in taken:
            return token
    raise StoreError(f"you have {len(taken)} characters, the most one account can have; "
                     "delete one to add another")
