"""The Book record: a story's pages with their pictures, its dedication and closing line, and
how it is stored as JSON (format 3; older records are read and saved in the new format at the
book's next change).

Each page has a `key`, given when it is made and never changed: its pictures' file names and the
seeds of its pictures come from the key, not from where the page is, so moving, inserting or
deleting other pages changes nothing about it. The pages of a book saved before keys existed get
their position as their key, which is what their seeds and file names were made from.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

from ..characters import Character
from ..store import StoreError
from ..story import Page, scene_from_prompt

# 2: scenes kept as the parent wrote them (1 stored the prompt);
# 3: page keys, dedication, closing line, language
FORMAT_VERSION = 3
MAX_TITLE_LENGTH = 200
MAX_WORDS_LENGTH = 300  # a dedication or a closing line
UNTITLED = "Untitled story"
# Bidi embedding/override/isolate controls can make a title display as something it isn't.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)], " ")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
Box = tuple[int, int, int, int]  # (left, top, right, bottom) in a picture's pixels


@dataclass(frozen=True)
class Illustration:
    """One image made for a page, with the seed and full prompt that reproduce it, and its
    likeness score once scored (likeness.PageScore.to_json(full=True); None before)."""

    file: str  # relative to the book folder, e.g. "images/p01-1234.png"
    seed: int
    prompt: str
    score: Optional[dict] = None

    @classmethod
    def from_json(cls, record: dict) -> "Illustration":
        return cls(record["file"], int(record["seed"]), record["prompt"], record.get("score"))


@dataclass(frozen=True)
class Region:
    """Where one character stands on a page's pictures: its name and a box."""

    name: str
    box: Box


@dataclass(frozen=True)
class BookPage(Page):
    """A story page in a book: the chosen illustration and every candidate made for it."""

    image: str = ""  # the chosen illustration's file; "" until the page is illustrated
    candidates: tuple[Illustration, ...] = ()  # every image made for the page, chosen included
    chosen_by_parent: bool = False  # a parent's choice, which no later score overrides
    order: tuple[str, ...] = ()  # the parent's left-to-right order of its characters, if set
    layout: tuple[Region, ...] = ()  # where each character stood when it was last drawn
    waiting: str = ""  # why it could not be drawn yet (a character without an adapter)
    key: int = 0  # the page's own number, kept when pages move: its seeds and file names

    @property
    def illustrated(self) -> bool:
        return bool(self.image)

    @property
    def chosen(self) -> Optional[Illustration]:
        """The chosen illustration (with its seed and prompt), or None before illustration."""
        return next((c for c in self.candidates if c.file == self.image), None)

    @property
    def seed(self) -> Optional[int]:
        """The seed of the chosen illustration: with its prompt it redraws the same picture."""
        chosen = self.chosen
        return chosen.seed if chosen else None

    @property
    def others(self) -> tuple[Illustration, ...]:
        """The candidates that were not chosen."""
        return tuple(c for c in self.candidates if c.file != self.image)

    @property
    def files(self) -> set[str]:
        """Every picture file of this page."""
        return {c.file for c in self.candidates} | ({self.image} if self.image else set())


@dataclass(frozen=True)
class Book:
    """A storybook: free-text title (never a path, never HTML), style, seed and pages."""

    id: str
    title: str
    style: str
    seed: int
    pages: tuple[BookPage, ...]
    created: str
    updated: str
    cover: str = ""  # the cover illustration's file; "" means the first illustrated page's
    characters: tuple[str, ...] = field(default=())
    dedication: str = ""  # on its own page after the cover ("For Mia, on her fourth birthday")
    closing: str = ""  # on its own page after the last story page ("The end. Sweet dreams!")
    language: str = ""  # BCP 47 tag ("en", "fr-CA") for reading aloud; "" when not said

    @property
    def cover_image(self) -> str:
        """The file shown on the cover: the chosen cover, else the first illustrated page's."""
        if self.cover:
            return self.cover
        return next((p.image for p in self.pages if p.illustrated), "")

    @property
    def missing(self) -> tuple[int, ...]:
        """Numbers (from 1) of the pages that have no illustration yet."""
        return tuple(n for n, page in enumerate(self.pages, start=1) if not page.illustrated)

    def page(self, number: int) -> BookPage:
        """Page `number`, counting from 1; a clear error for a page the book doesn't have."""
        if not 1 <= number <= len(self.pages):
            raise StoreError(f"page {number} does not exist: this book has "
                             + ("only page 1" if len(self.pages) == 1
                                else f"pages 1 to {len(self.pages)}"))
        return self.pages[number - 1]

    def files(self) -> set[str]:
        """Every illustration file the record refers to."""
        return {file for page in self.pages for file in page.files}

    @property
    def next_key(self) -> int:
        """The key of a page added now: one no page of the book has."""
        return max((page.key for page in self.pages), default=0) + 1

    def to_json(self) -> dict:
        return {"version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, record: dict,
                  characters: Callable[[], Sequence[Character]] = tuple) -> "Book":
        """The book a record holds. A format-1 record stored each scene as its prompt: it is
        turned back into the parent's words with `characters()` (the owner's characters).
        Records before format 3 have no page keys: each page's key is its position."""
        version = record.get("version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise StoreError(f"book {record.get('id')!r} was saved by a newer Taleweaver "
                             f"(format {version}); update Taleweaver to open it")
        cast = characters() if version < 2 else ()
        pages = tuple(
            BookPage(text=p["text"], scene=scene_from_prompt(p["scene"], cast),
                     characters=tuple(p["characters"]),
                     image=p.get("image", ""),
                     candidates=tuple(Illustration.from_json(c) for c in p.get("candidates", ())),
                     chosen_by_parent=bool(p.get("chosen_by_parent", False)),
                     order=tuple(p.get("order", ())),
                     layout=tuple(Region(r["name"], tuple(r["box"])) for r in p.get("layout", ())),
                     waiting=p.get("waiting", ""),
                     key=int(p["key"]) if version >= 3 else number)
            for number, p in enumerate(record["pages"], start=1))
        keys = [page.key for page in pages]
        if len(set(keys)) != len(keys) or min(keys, default=1) < 1:
            raise StoreError(f"book {record.get('id')!r} is damaged: its pages' keys {keys} "
                             "are not distinct positive numbers")
        return cls(id=record["id"], title=record["title"], style=record["style"],
                   seed=int(record["seed"]), pages=pages, created=record["created"],
                   updated=record["updated"], cover=record.get("cover", ""),
                   characters=tuple(record.get("characters", ())),
                   dedication=record.get("dedication", ""), closing=record.get("closing", ""),
                   language=record.get("language", ""))


def clean_title(title: str) -> str:
    """A title as stored: free text on one line, bidi tricks and control characters removed.

    An empty title becomes "Untitled story"; one past MAX_TITLE_LENGTH is an error.
    """
    text = " ".join(_plain(title).split())
    if len(text) > MAX_TITLE_LENGTH:
        raise StoreError(f"title is {len(text)} characters long; the limit is {MAX_TITLE_LENGTH}")
    return text or UNTITLED


def clean_words(text: str, what: str) -> str:
    """A dedication or closing line as stored: its line breaks kept (at most one in a row),
    bidi tricks and control characters removed; "" takes it away. `what` names it in errors."""
    lines = [" ".join(line.split()) for line in _plain(text, keep="\n").split("\n")]
    kept = "\n".join(line for n, line in enumerate(lines) if line or (n and lines[n - 1]))
    kept = kept.strip("\n")
    if len(kept) > MAX_WORDS_LENGTH:
        raise StoreError(f"the {what} is {len(kept)} characters long; the limit is "
                         f"{MAX_WORDS_LENGTH}")
    return kept


def check_language(tag: str) -> str:
    """A language tag as stored ("en", "fr-CA", "pt-BR"), or "" for none."""
    tag = (tag or "").strip().replace("_", "-")
    if tag and not (_LANGUAGE_RE.fullmatch(tag) and len(tag) <= 35):
        raise StoreError(f"language {tag[:40]!r} is not a language tag: use one such as en, "
                         "fr, de-CH or pt-BR")
    return tag


def cast_of(pages: Sequence[Page]) -> tuple[str, ...]:
    """Everyone who appears in the book, in order of first appearance."""
    return tuple(dict.fromkeys(name for page in pages for name in page.characters))


def _plain(text: str, keep: str = "") -> str:
    """NFC text without bidi controls; control characters (but those in `keep`) become spaces."""
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_BIDI_CONTROLS)
    return "".join(" " if unicodedata.category(ch) == "Cc" and ch not in keep else ch
                   for ch in text)
