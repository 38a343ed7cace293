"""Characters: add one from photos, add photos to it, change its kind or look, list them, see
its crops, the books that use it, delete it (and its Hub repo)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..book import BookStore
from ..characters import (Character, CharacterStore, Crop, DamagedCharacter, check_description,
                          check_kind, check_name, check_name_free, choose_trigger)
from ..checks import ArgumentError, flag, shown, text
from ..hub.calls import Sleep
from ..hub.repos import HubResult, delete_hub_repo, hub_record
from ..intake.photos import EXTENSIONS, PhotoReport, Review, is_person, review_photos
from ..likeness import Identity, character_identity, save_identity
from ..progress import ProgressFn, counted
from ..safety import screen_text
from ..settings import Settings
from ..training.finish import adapter_out_of_date


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
    """A new character (or one that got more photos), the verdict on each photo, and why its
    trained adapter is now out of date ("" when it has none or it still fits)."""

    character: Character
    reports: tuple[PhotoReport, ...]
    out_of_date: str = ""

    def to_json(self) -> dict:
        return {"character": self.character.to_json(),
                "photos": [report.to_json() for report in self.reports],
                "out_of_date": self.out_of_date}


@dataclass(frozen=True)
class Changed:
    """A character after a change of kind or look, and why its adapter is now out of date."""

    character: Character
    out_of_date: str

    def to_json(self) -> dict:
        return {"character": self.character.to_json(), "out_of_date": self.out_of_date}


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
    out_of_date: str = ""  # why its adapter no longer fits it ("" when it does, or has none)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BookUse:
    """A book whose pages show a character."""

    id: str
    title: str
    pages: tuple[int, ...]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DeletedCharacter:
    """A character that was deleted, what happened to its Hub repo (None: not asked), and the
    books that still name it (their pages with it can't be drawn again)."""

    name: str
    slug: str
    hub: HubResult | None
    books: tuple[BookUse, ...] = ()

    def to_json(self) -> dict:
        return {"deleted": self.name, "slug": self.slug,
                "hub": self.hub.to_json() if self.hub else None,
                "books": [book.to_json() for book in self.books]}


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
    _check_files(photos)
    check_name(name)
    check_kind(kind)
    check_description(description)
    screen_text(kind, "the kind")
    screen_text(description, "the look")
    store = CharacterStore(settings, user)
    check_name_free(name, store.list())
    if not settings.min_photos <= len(photos) <= settings.max_photos:
        raise ValueError(f"{name}: choose {photo_limits(settings)} photos (about 8 good ones "
                         f"is best); you gave {counted(len(photos), 'photo')}")
    review = _review(settings, name, kind, photos, settings.min_photos, on_progress)
    trigger = choose_trigger(user, name, {c.trigger for c in store.list()})
    crops, warnings, originals = _accepted(review)
    character = store.create(name, kind, description, trigger, crops, warnings,
                             originals=originals if keep_originals else ())
    if is_person(kind):  # the faces intake described, kept for scoring every page
        save_identity(store, character, Identity(tuple(
            crop.descriptor for crop in review.crops if crop.descriptor is not None)))
    return AddResult(character, review.reports)


def photo_limits(settings: Settings) -> str:
    """"3 to 20": the photos a character is made from, as every door says it."""
    return f"{settings.min_photos} to {settings.max_photos}"


def add_photos(settings: Settings, user: str, name: str, photos: Sequence[str | Path], *,
               keep_originals: bool = False,
               on_progress: ProgressFn | None = None) -> AddResult:
    """Check and crop more photos of an existing character and add the accepted ones, up to
    settings.max_photos in all. NotEnoughPhotos (nothing changed) when none can be used. The
    result says when the character's trained adapter is out of date because of it."""
    keep_originals = flag("keep_originals", keep_originals)
    _check_files(photos)
    store = CharacterStore(settings, user)
    character = store.get(text("name", name))
    room = settings.max_photos - len(character.crops)
    if not 1 <= len(photos) <= room:
        limit = (f"it can take {counted(room, 'more photo')}" if room > 0
                 else "it can take no more")
        raise ValueError(f"{character.name} has {counted(len(character.crops), 'photo')} and a "
                         f"character uses at most {settings.max_photos}, so {limit}; "
                         f"you gave {counted(len(photos), 'photo')}")
    review = _review(settings, character.name, character.kind, photos, 1, on_progress)
    crops, warnings, originals = _accepted(review)
    before = character_identity(store, character)  # the faces scoring knows so far
    character = store.add_crops(character.name, crops, warnings,
                                originals=originals if keep_originals else ())
    if before is not None:  # and the new photos' faces, described by the intake
        save_identity(store, character, Identity(before.descriptors + tuple(
            crop.descriptor for crop in review.crops if crop.descriptor is not None)))
    return AddResult(character, review.reports,
                     adapter_out_of_date(settings, user, character.name))


def change_character(settings: Settings, user: str, name: str, *, kind: str | None = None,
                     description: str | None = None) -> Changed:
    """Change a character's kind ("girl" to "little girl") or look (None keeps it). A new kind
    makes its trained adapter out of date (its prompt names the kind); the look is put into
    each page's prompt when drawn, so a new look reaches every page without training. Either
    with a word of assets/unsafe_words.txt is refused."""
    if kind is not None:
        kind = " ".join(text("kind", kind).split())
        screen_text(kind, "the kind")
    if description is not None:
        description = " ".join(text("description", description).split())
        screen_text(description, "the look")
    character = CharacterStore(settings, user).update(text("name", name), kind=kind,
                                                      description=description)
    return Changed(character, adapter_out_of_date(settings, user, character.name))


def _check_files(photos: Any) -> None:
    if not isinstance(photos, (list, tuple)) or not all(isinstance(p, (str, Path))
                                                         for p in photos):
        raise ArgumentError(f"photos: expected a list of files, got {shown(photos)}")


def _review(settings: Settings, name: str, kind: str, photos: Sequence[str | Path],
            needed: int, on_progress: ProgressFn | None) -> Review:
    """The verdict on each photo; NotEnoughPhotos when fewer than `needed` can be used."""
    review = review_photos(settings, kind, photos, on_progress=on_progress)
    if len(review.crops) < needed:
        verb = "is" if needed == 1 else "are"
        lines = [f"{name}: only {len(review.crops)} of {counted(len(photos), 'photo')} can be "
                 f"used and at least {needed} {verb} needed, so nothing was saved. "
                 "Add more photos:"]
        lines += [report.describe() for report in review.reports]
        raise NotEnoughPhotos("\n".join(lines), review.reports)
    return review


def _accepted(review: Review) -> tuple[list, list[str], list[tuple[Path, str]]]:
    """The accepted crops as the store takes them, their warnings, and their uploads."""
    crops = [(crop.image, Crop("", crop.original_size, crop.crop_box, crop.source))
             for crop in review.crops]
    warnings = [f"photo {report.index} ({report.source}): {warning}"
                for report in review.reports if report.accepted for warning in report.warnings]
    originals = [(crop.path, EXTENSIONS.get(crop.format, ".img")) for crop in review.crops]
    return crops, warnings, originals


def list_characters(settings: Settings, user: str) -> list[CharacterRow]:
    """The user's characters, by name, then any whose record is damaged (named by folder,
    only deletable)."""
    store = CharacterStore(settings, user)
    rows = []
    for character in store.list():
        record = hub_record(settings, user, character)
        rows.append(CharacterRow(character.name, character.kind, character.description,
                                 character.trigger, len(character.crops),
                                 store.has_adapter(character), record.repo_id if record else "",
                                 out_of_date=adapter_out_of_date(settings, user, character.name)))
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
    return DeletedCharacter(character.name, character.slug, repo,
                            books_using(settings, user, character.name))


def books_using(settings: Settings, user: str, name: str) -> tuple[BookUse, ...]:
    """The user's books with pages that show this character (by its name), newest first: what
    deleting it would leave without a way to draw those pages."""
    wanted = name.strip().casefold()
    uses = []
    for book in BookStore(settings, user).list():
        pages = tuple(number for number, page in enumerate(book.pages, start=1)
                      if any(n.casefold() == wanted for n in page.characters))
        if pages:
            uses.append(BookUse(book.id, book.title, pages))
    return tuple(uses)
