"""The Book record (a story's pages with their illustrations) and the per-user store of books.

    <user>/books/<book id>/book.json          the record below
    <user>/books/<book id>/images/*.png       every illustration made for the book, full resolution
    <user>/books/<book id>/thumbs/*.png       small copies for the gallery, made once, on demand

Page numbers in this API count from 1, as people and the CLI do. Changes to a stored book go
through `BookStore.update` (or the helpers built on it), which re-reads the record under the
book's lock, so two writers (two browser tabs, an illustration job and the gallery) never lose
each other's pages.
"""
from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Callable, Optional, Sequence

from PIL import Image

from .characters import Character, CharacterStore
from .settings import Settings
from .store import (StoreError, atomic_write_bytes, atomic_write_json, inside, locked, read_json,
                    remove_tree, user_dir)
from .story import Page, scene_from_prompt

log = logging.getLogger(__name__)
RECORD = "book.json"
FORMAT_VERSION = 2  # 2: scenes kept as the parent wrote them (1 stored the prompt)
MAX_TITLE_LENGTH = 200
UNTITLED = "Untitled story"
THUMBNAIL_SIZE = 256  # pixels, longest side
_BOOK_ID_RE = re.compile(r"[A-Za-z0-9]{1,64}")
# Bidi embedding/override/isolate controls can make a title display as something it isn't.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)], " ")


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
        return {c.file for p in self.pages for c in p.candidates} | {
            p.image for p in self.pages if p.image}

    def to_json(self) -> dict:
        return {"version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, record: dict,
                  characters: Callable[[], Sequence[Character]] = tuple) -> "Book":
        """The book a record holds. A format-1 record stored each scene as its prompt: it is
        turned back into the parent's words with `characters()` (the owner's characters), and
        saved so at the book's next change."""
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
                     waiting=p.get("waiting", ""))
            for p in record["pages"])
        return cls(id=record["id"], title=record["title"], style=record["style"],
                   seed=int(record["seed"]), pages=pages, created=record["created"],
                   updated=record["updated"], cover=record.get("cover", ""),
                   characters=tuple(record.get("characters", ())))


@dataclass(frozen=True)
class GalleryItem:
    """One book as the gallery lists it: enough to draw a card without opening the book."""

    id: str
    title: str
    created: str
    updated: str
    pages: int
    illustrated: int  # pages with a chosen illustration
    thumbnail: Optional[Path]  # a small PNG of the cover; None before any illustration


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def clean_title(title: str) -> str:
    """A title as stored: free text on one line, bidi tricks and control characters removed.

    An empty title becomes "Untitled story"; one past MAX_TITLE_LENGTH is an error.
    """
    text = unicodedata.normalize("NFC", title or "").translate(_BIDI_CONTROLS)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = " ".join(text.split())
    if len(text) > MAX_TITLE_LENGTH:
        raise StoreError(f"title is {len(text)} characters long; the limit is {MAX_TITLE_LENGTH}")
    return text or UNTITLED


class BookStore:
    """One user's books on disk; ids are generated here, never taken from titles."""

    def __init__(self, settings: Settings, user: str):
        self.settings = settings
        self.user = user
        self.root = user_dir(settings, user) / "books"

    def create(self, title: str, style: str, seed: int, pages: Sequence[Page]) -> Book:
        """A new book with these pages, not yet illustrated, saved at once."""
        stamp = now()
        book = Book(id=secrets.token_hex(8), title=clean_title(title), style=style, seed=seed,
                    pages=tuple(BookPage(p.text, p.scene, tuple(p.characters)) for p in pages),
                    created=stamp, updated=stamp, characters=_cast(pages))
        self.save(book)
        return book

    def folder(self, book_id: str) -> Path:
        if not _BOOK_ID_RE.fullmatch(book_id or ""):
            raise StoreError(f"{book_id!r} is not a book id")
        return inside(self.root, book_id)

    def get(self, book_id: str) -> Book:
        folder = self.folder(book_id)
        if not (folder / RECORD).is_file():
            raise StoreError(f"no book with id {book_id!r}")
        return self._read(folder)

    def _read(self, folder: Path) -> Book:
        return Book.from_json(read_json(folder / RECORD),
                              lambda: CharacterStore(self.settings, self.user).list())

    def list(self) -> list[Book]:
        """This user's books, newest first; a damaged record is logged and left out."""
        books = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.name.startswith(".") or not (folder / RECORD).is_file():
                    continue
                try:
                    books.append(self._read(folder))
                except (StoreError, KeyError, TypeError, ValueError) as err:
                    log.warning("skipping damaged book record %s: %s", folder, err)
        return sorted(books, key=lambda b: (datetime.fromisoformat(b.created), b.id),
                      reverse=True)

    def save(self, book: Book) -> Book:
        """Write the whole record atomically, stamping `updated`; returns the saved book.

        The last writer wins: to change a stored book, use `update` or the helpers below.
        """
        book = replace(book, updated=now())
        with locked(self.folder(book.id)):
            atomic_write_json(self.folder(book.id) / RECORD, book.to_json())
        return book

    def update(self, book_id: str, change: Callable[[Book], Book]) -> Book:
        """Apply `change` to the stored book under its lock, and save; returns the saved book.

        The record is re-read inside the lock, so concurrent updates all land.
        """
        folder = self.folder(book_id)
        if not (folder / RECORD).is_file():
            raise StoreError(f"no book with id {book_id!r}")
        with locked(folder):
            book = change(self.get(book_id))
            if book.id != book_id:
                raise StoreError(f"an update of book {book_id!r} can't change its id")
            book = replace(book, updated=now())
            atomic_write_json(folder / RECORD, book.to_json())
        return book

    def save_image(self, book: Book, page_number: int, seed: int, image: Image.Image) -> str:
        """Store one illustration as PNG; returns its file name relative to the book folder."""
        book.page(page_number)
        relative = f"images/p{page_number:02d}-{seed}.png"
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        atomic_write_bytes(self.folder(book.id) / relative, buffer.getvalue())
        return relative

    def add_illustration(self, book_id: str, page_number: int, image: Image.Image, *,
                         seed: int, prompt: str, choose: bool = True) -> Book:
        """Store a new candidate for a page (PNG, full resolution) and record it, by default
        as the page's chosen picture (a new drawing replaces a parent's earlier choice: they
        asked for it); safe to call while other pages are being changed."""
        file = self.save_image(self.get(book_id), page_number, seed, image)
        illustration = Illustration(file, seed, prompt)

        def add(book: Book) -> Book:
            page = book.page(page_number)
            candidates = tuple(c for c in page.candidates if c.file != file) + (illustration,)
            if choose or not page.image:
                page = replace(page, image=file, chosen_by_parent=False)
            page = replace(page, waiting="")
            return _with_page(book, page_number, replace(page, candidates=candidates))

        return self.update(book_id, add)

    def choose(self, book_id: str, page_number: int, file: str, *,
               by_parent: bool = True) -> Book:
        """Make one of a page's candidates its chosen illustration; a parent's choice is kept
        over any later score."""
        def pick(book: Book) -> Book:
            page = book.page(page_number)
            if file not in {c.file for c in page.candidates}:
                raise StoreError(f"{file!r} is not one of page {page_number}'s pictures")
            return _with_page(book, page_number,
                              replace(page, image=file, chosen_by_parent=by_parent))

        return self.update(book_id, pick)

    def record_scores(self, book_id: str, page_number: int, scores: dict[str, dict],
                      best: Optional[str] = None) -> Book:
        """Keep the likeness scores of some of a page's pictures (by file) and, unless a parent
        chose its picture, show `best`."""
        def keep(book: Book) -> Book:
            page = book.page(page_number)
            candidates = tuple(replace(c, score=scores.get(c.file, c.score))
                               for c in page.candidates)
            page = replace(page, candidates=candidates)
            if best in {c.file for c in candidates} and not page.chosen_by_parent:
                page = replace(page, image=best)
            return _with_page(book, page_number, page)

        return self.update(book_id, keep)

    def set_order(self, book_id: str, page_number: int, names: Sequence[str]) -> Book:
        """The parent's left-to-right order of a page's characters (empty: the story's)."""
        def order(book: Book) -> Book:
            page = book.page(page_number)
            if names and sorted(names) != sorted(page.characters):
                on_page = ", ".join(page.characters) or "nobody"
                raise StoreError(f"page {page_number}: the order must name each of its "
                                 f"characters once ({on_page})")
            return _with_page(book, page_number, replace(page, order=tuple(names)))

        return self.update(book_id, order)

    def set_layout(self, book_id: str, page_number: int, layout: Sequence[Region]) -> Book:
        """Where each character of a page stood when it was drawn."""
        return self.update(book_id, lambda book: _with_page(
            book, page_number, replace(book.page(page_number), layout=tuple(layout))))

    def set_waiting(self, book_id: str, waiting: dict[int, str]) -> Book:
        """Why some pages could not be drawn yet (page number: reason); others are cleared."""
        return self.update(book_id, lambda book: replace(book, pages=tuple(
            replace(page, waiting=waiting.get(number, "")) for number, page in
            enumerate(book.pages, start=1))))

    def set_cover(self, book_id: str, file: str) -> Book:
        """Put one of the book's illustrations on the cover; "" goes back to the first page's."""
        def cover(book: Book) -> Book:
            if file and file not in book.files():
                raise StoreError(f"{file!r} is not one of this book's pictures")
            return replace(book, cover=file)

        return self.update(book_id, cover)

    def set_title(self, book_id: str, title: str) -> Book:
        """Rename a book (free text; the id and folder stay the same)."""
        cleaned = clean_title(title)
        return self.update(book_id, lambda book: replace(book, title=cleaned))

    def update_page(self, book_id: str, page_number: int, *, text: Optional[str] = None,
                    scene: Optional[str] = None,
                    characters: Optional[Sequence[str]] = None) -> Book:
        """Change a page's text, scene prompt or characters; its pictures stay."""
        if text is not None and len(text) > self.settings.max_page_chars:
            raise StoreError(f"page {page_number}: the text is {len(text)} characters long; "
                             f"the limit is {self.settings.max_page_chars}")

        def edit(book: Book) -> Book:
            page = book.page(page_number)
            page = replace(page, text=page.text if text is None else text,
                           scene=page.scene if scene is None else scene,
                           characters=page.characters if characters is None
                           else tuple(characters))
            if page.order and sorted(page.order) != sorted(page.characters):
                page = replace(page, order=())  # the parent's order was for other characters
            book = _with_page(book, page_number, page)
            return replace(book, characters=_cast(book.pages)) if characters is not None else book

        return self.update(book_id, edit)

    def image_path(self, book: Book, relative: str) -> Path:
        return inside(self.folder(book.id), relative)

    def thumbnail(self, book: Book) -> Optional[Path]:
        """A small PNG of the cover picture, made on first use and kept; None if there is none."""
        cover = book.cover_image
        if not cover:
            return None
        source = self.image_path(book, cover)
        thumb = inside(self.folder(book.id), "thumbs", Path(cover).name)
        try:
            if thumb.is_file() and thumb.stat().st_mtime_ns >= source.stat().st_mtime_ns:
                return thumb
            with Image.open(source) as image:
                image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
                buffer = BytesIO()
                image.save(buffer, format="PNG")
        except OSError as err:
            log.warning("no thumbnail for book %s: %s", book.id, err)
            return None
        atomic_write_bytes(thumb, buffer.getvalue())
        return thumb

    def gallery(self) -> list[GalleryItem]:
        """The gallery's cards: this user's books, newest first, with cover thumbnails."""
        return [GalleryItem(id=b.id, title=b.title, created=b.created, updated=b.updated,
                            pages=len(b.pages), illustrated=len(b.pages) - len(b.missing),
                            thumbnail=self.thumbnail(b))
                for b in self.list()]

    def delete(self, book_id: str) -> None:
        """Remove a book with all its pictures and thumbnails."""
        folder = self.folder(book_id)
        if not (folder / RECORD).is_file():
            raise StoreError(f"no book with id {book_id!r}")
        with locked(folder):
            remove_tree(folder)


def _cast(pages: Sequence[Page]) -> tuple[str, ...]:
    """Everyone who appears in the book, in order of first appearance."""
    return tuple(dict.fromkeys(name for page in pages for name in page.characters))


def _with_page(book: Book, number: int, page: BookPage) -> Book:
    pages = list(book.pages)
    pages[number - 1] = page
    return replace(book, pages=tuple(pages))
