"""The Character record (a person or pet of the book) and the per-user store of characters.

    <user>/characters/<slug>/character.json   the record below
    <user>/characters/<slug>/crops/NN.png     square crops that training uses
    <user>/characters/<slug>/adapter/         the trained LoRA (written by train.py)
    <user>/characters/<slug>/checkpoint/      training state between chunks (train.py)
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from PIL import Image

from .settings import Settings
from .store import (StoreError, atomic_write_json, inside, locked, read_json, remove_tree,
                    slugify, staged_dir, user_dir)

log = logging.getLogger(__name__)
RECORD = "character.json"
MAX_NAME_LENGTH = 60

# The trained adapter's folder, shaped like its Hub repo (train.py writes it, hub.py pushes it).
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers format: load_lora_weights
KOHYA_WEIGHTS = "kohya_lora.safetensors"  # kohya/A1111/ComfyUI key names
TRAIN_CONFIG = "train_config.json"  # the TrainConfig used, next to the weights
VALIDATION_IMAGE = "validation.png"
CHECKPOINT_DIR = "checkpoint"  # training state between chunks


@dataclass(frozen=True)
class Crop:
    """One training crop: its file, and where it came from in the (upright) original photo.

    SDXL is conditioned on the original size and the crop's position, so both are kept.
    """

    file: str  # relative to the character folder, e.g. "crops/01.png"
    original_size: tuple[int, int]  # (height, width) of the photo after EXIF rotation
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) in the original photo
    source: str = ""  # the uploaded file's name, for reports only


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

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> "Character":
        crops = tuple(Crop(file=c["file"], original_size=tuple(c["original_size"]),
                           crop_box=tuple(c["crop_box"]), source=c.get("source", ""))
                      for c in record["crops"])
        return cls(name=record["name"], slug=record["slug"], kind=record["kind"],
                   description=record.get("description", ""), trigger=record["trigger"],
                   crops=crops, created=record["created"],
                   warnings=tuple(record.get("warnings", ())))


class CharacterNotFound(StoreError):
    """No character of that name for this user."""


class CharacterStore:
    """One user's characters on disk; it never reads or writes outside that user's folder."""

    def __init__(self, settings: Settings, user: str):
        self.settings = settings
        self.user = user
        self.root = user_dir(settings, user) / "characters"

    def list(self) -> list[Character]:
        """This user's characters, by name; a damaged record is logged and left out."""
        found = []
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                if folder.name.startswith(".") or not (folder / RECORD).is_file():
                    continue
                try:
                    found.append(Character.from_json(read_json(folder / RECORD)))
                except (StoreError, KeyError, TypeError) as err:
                    log.warning("skipping damaged character record %s: %s", folder, err)
        return sorted(found, key=lambda c: c.name.casefold())

    def get(self, name: str) -> Character:
        """The character with this name (any case) or slug."""
        wanted = name.strip().casefold()
        for character in self.list():
            if wanted in (character.name.casefold(), character.slug):
                return character
        names = ", ".join(c.name for c in self.list()) or "none yet"
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
               warnings: Sequence[str] = ()) -> Character:
        """Save a new character with its crops, all at once or not at all."""
        name, kind, description = name.strip(), kind.strip(), description.strip()
        check_name(name)
        if not kind:
            raise StoreError("kind is empty: say who this is, e.g. girl, boy, woman, man, dog, cat")
        if not crops:
            raise StoreError(f"{name}: no accepted photos to save")
        with locked(self.root):
            existing = self.list()
            if any(c.name.casefold() == name.casefold() for c in existing):
                raise StoreError(f"you already have a character named {name!r}; "
                                 "choose another name or delete that one first")
            if any(c.trigger == trigger for c in existing):
                raise StoreError(f"trigger token {trigger!r} is already used by another character")
            slug = _free_slug(slugify(name), {c.slug for c in existing}, self.root)
            saved = []
            with staged_dir(inside(self.root, slug)) as tmp:
                for index, (image, crop) in enumerate(crops, start=1):
                    relative = f"crops/{index:02d}.png"
                    (tmp / "crops").mkdir(exist_ok=True)
                    image.convert("RGB").save(tmp / relative, format="PNG")
                    saved.append(Crop(relative, crop.original_size, crop.crop_box, crop.source))
                character = Character(name=name, slug=slug, kind=kind, description=description,
                                      trigger=trigger, crops=tuple(saved),
                                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                      warnings=tuple(warnings))
                atomic_write_json(tmp / RECORD, character.to_json())
        return character

    def delete(self, name: str) -> Character:
        """Remove a character and everything of it: record, crops, checkpoints, adapter."""
        with locked(self.root):
            character = self.get(name)
            remove_tree(self.folder(character))
        return character


def check_name(name: str) -> None:
    """A character name is free text (unicode, spaces, apostrophes) of sensible length."""
    if not name:
        raise StoreError("name is empty: give the character a name, e.g. Mia")
    if len(name) > MAX_NAME_LENGTH:
        raise StoreError(f"name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if any(not ch.isprintable() for ch in name):
        raise StoreError("name contains control characters; use letters, spaces and punctuation")


def _free_slug(slug: str, taken: set[str], root: Path) -> str:
    candidate, n = slug, 2
    while candidate in taken or (root / candidate).exists():
        candidate, n = f"{slug}-{n}", n + 1
    return candidate
