"""Characters: add one from photos, list them, see its crops, delete it (and its Hub repo)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..characters import (Character, CharacterStore, Crop, DamagedCharacter, check_description,
                          check_kind, check_name, check_name_free, choose_trigger)
from ..checks import ArgumentError, flag, shown, text
from ..hub.calls import Sleep
from ..hub.repos import HubResult, delete_hub_repo, hub_record
from ..intake.photos import EXTENSIONS, PhotoReport, is_person, review_photos
from ..likeness import Identity, save_identity
from ..progress import ProgressFn, counted
from ..safety import screen_text
from ..settings import Settings


class NotEnoughPhotos(ValueError):
    """Too few photos were accepted to make a character; nothing was saved. `reports` has the
    verdict on every photo, for the app to show."""

    def __init__(self, message: str, reports: Sequence[PhotoReport]):
        super().__init__(message)
        self.reports = tuple(reports)


class RepoNotDeleted(ValueError):
    """A character was kept because its Hub repo could not be deleted; `result` says why."""

    def __init__(self, message: str, result: HubResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class AddResult:
    """A new character and the verdict on each photo it was made from."""

    character: Character
    reports: tuple[PhotoReport, ...]

    def to_json(self) -> dict:
        return {"character": self.character.to_json(),
                "photos": [report.to_json() for report in self.reports]}


@dataclass(frozen=True)
class CharacterRow:
    """One character as every listing shows it."""

    name: str
    kind: str
    description: str
    trigger: str
    photos: int
    trained: bool
    hub_repo: str  # "" until its adapter is pushed to (or pulled from) the Hub
    damaged: bool = False  # its record can't be read: it can only be deleted (by `name`)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DeletedCharacter:
    """A character that was deleted, and what happened to its Hub repo (None: not asked)."""

    name: str
    slug: str
    hub: HubResult | None

    def to_json(self) -> dict:
        return {"deleted": self.name, "slug": self.slug,
                "hub": self.hub.to_json() if self.hub else None}


def add_character(settings: Settings, user: str, name: str, kind: str, description: str,
                  photos: Sequence[str | Path], *, keep_originals: bool = False,
                  on_progress: ProgressFn | None = None) -> AddResult:
    """Check and crop the photos, then save the character with the accepted ones.

    Raises NotEnoughPhotos (nothing saved) when fewer than settings.min_photos are accepted,
    and StoreError for a bad name, kind or description, before any photo is opened.
    Uploads are not kept unless keep_originals is set; the files passed in are left as they are.
    A look or kind with a word of assets/unsafe_words.txt is refused (they go into prompts).
    """
    name, kind = text("name", name).strip(), " ".join(text("kind", kind).split())
    description = " ".join(text("description", description).split())
    keep_originals = flag("keep_originals", keep_originals)
    if not isinstance(photos, (list, tuple)) or not all(isinstance(p, (str, Path))
                                                         for p in photos):
        raise ArgumentError(f"photos: expected a list of files, got {shown(photos)}")
    check_name(name)
    check_kind(kind)
    check_description(description)
    screen_text(kind, "the kind")
    screen_text(description, "the look")
    store = CharacterStore(settings, user)
    check_name_free(name, store.list())
    most = 2 * settings.max_photos
    if not settings.min_photos <= len(photos) <= most:
        raise ValueError(f"{name}: choose between {settings.min_photos} and {most} photos "
                         f"(about 8 good ones is best); you gave {counted(len(photos), 'photo')}")
    review = review_photos(settings, kind, photos, on_progress=on_progress)
    if len(review.crops) < settings.min_photos:
        needed = "is" if settings.min_photos == 1 else "are"
        lines = [f"{name}: only {len(review.crops)} of {counted(len(photos), 'photo')} can be "
                 f"used and at least {settings.min_photos} {needed} needed, so nothing was saved. "
                 "Add more photos:"]
        lines += [report.describe() for report in review.reports]
        raise NotEnoughPhotos("\n".join(lines), review.reports)
    trigger = choose_trigger(user, name, {c.trigger for c in store.list()})
    crops = [(crop.image, Crop("", crop.original_size, crop.crop_box, crop.source))
             for crop in review.crops]
    originals = [(crop.path, EXTENSIONS.get(crop.format, ".img")) for crop in review.crops]
    warnings = [f"photo {report.index} ({report.source}): {warning}"
                for report in review.reports if report.accepted for warning in report.warnings]
    character = store.create(name, kind, description, trigger, crops, warnings,
                             originals=originals if keep_originals else ())
    if is_person(kind):  # the faces intake described, kept for scoring every page
        save_identity(store, character, Identity(tuple(
            crop.descriptor for crop in review.crops if crop.descriptor is not None)))
    return AddResult(character, review.reports)


def list_characters(settings: Settings, user: str) -> list[CharacterRow]:
    """The user's characters, by name, then any whose record is damaged (named by folder,
    only deletable)."""
    store = CharacterStore(settings, user)
    rows = []
    for character in store.list():
        record = hub_record(settings, user, character)
        rows.append(CharacterRow(character.name, character.kind, character.description,
                                 character.trigger, len(character.crops),
                                 store.has_adapter(character), record.repo_id if record else ""))
    return rows + [CharacterRow(folder, "", "", "", 0, False, "", damaged=True)
                   for folder in store.damaged()]


def get_character(settings: Settings, user: str, name: str) -> Character:
    """One of the user's characters by name (any case) or slug."""
    return CharacterStore(settings, user).get(text("name", name))


def crop_files(settings: Settings, user: str, name: str) -> list[tuple[Path, str]]:
    """The square crops kept for training, with the name of the photo each came from."""
    store = CharacterStore(settings, user)
    character = store.get(text("name", name))
    return [(store.path(character, crop.file), crop.source) for crop in character.crops]


def delete_character(settings: Settings, user: str, name: str, token: str | None, *,
                     with_repo: bool, api: Any = None,
                     sleep: Sleep = time.sleep) -> DeletedCharacter:
    """Delete a character (photos, crops, checkpoints, adapter), with its Hub repo first when
    `with_repo`: if that repo is not deleted, RepoNotDeleted is raised and nothing is deleted,
    so trying again later does both. A damaged character is deleted without its repo (whose
    name its record held): with `with_repo` that is an error saying so."""
    store = CharacterStore(settings, user)
    with_repo = flag("delete_hub_repo", with_repo)
    try:
        character = store.get(text("name", name))
    except DamagedCharacter:
        if with_repo:
            raise ValueError(f"{name}'s record is damaged, so its Hub repo can't be found from "
                             "it: delete the repo on huggingface.co (its settings page), then "
                             f"{name} here without its repo") from None
        folder = store.delete_damaged(name)
        return DeletedCharacter(name, folder, None)
    repo = None
    if with_repo:
        repo = delete_hub_repo(settings, user, character, token, api=api, sleep=sleep)
        if repo.status != "deleted":
            raise RepoNotDeleted(f"{repo.message} Nothing was deleted.", repo)
    store.delete(character.name)
    return DeletedCharacter(character.name, character.slug, repo)
