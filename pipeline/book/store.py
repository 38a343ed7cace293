"""The per-user store of books: each book a folder with its record and its pictures.

    <user>/books/<book id>/book.json          the record (record.py)
    <user>/books/<book id>/images/*.png       every illustration made for the book, full resolution
    <user>/books/<book id>/thumbs/*.png       small copies for the gallery, made once, on demand

Page numbers in this API count from 1, as people and the CLI do. Changes to a stored book go
through `BookStore.update` (or the helpers built on it), which re-reads the record under the
book's lock, so two writers (two browser tabs, an illustration job and the gallery) never lose
each other's pages. While pages are being drawn (`drawing`), their order can't change: a picture
is stored by its page's number, so a page moved meanwhile would get another page's picture.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from PIL import Image

from ..characters import Character, CharacterStore
from ..settings import Settings
from ..store import (StoreError, atomic_write_bytes, atomic_write_json, inside, locked, read_json,
                     remove_tree, user_dir)
from ..story import Page
from . import edits
from .record import Book, BookPage, Illustration, Region, cast_of, clean_title

log = logging.getLogger(__name__)
RECORD = "book.json"
DRAWING = ".drawing"  # held (shared) while pages are drawn; order changes need it alone
THUMBNAIL_SIZE = 256  # pixels, longest side
_BOOK_ID_RE = re.compile(r"[A-Za-z0-9]{1,64}")


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
                    pages=tuple(BookPage(p.text, p.scene, tuple(p.characters), key=n)
                                for n, p in enumerate(pages, start=1)),
                    created=stamp, updated=stamp, characters=cast_of(pages))
        return self.save(book)

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
        """Store one illustration as PNG; returns its file name relative to the book folder,
        named after the page's key (so never another page's, wherever the page moves)."""
        relative = f"images/p{book.page(page_number).key:02d}-{seed}.png"
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
            return replace(book, characters=cast_of(book.pages)) if characters is not None \
                else book

        return self.update(book_id, edit)

    def set_text(self, book_id: str, page_number: int, text: str,
                 cast: Sequence[Character]) -> Book:
        """Change a page's words (its scene too, where the scene is its words); pictures stay."""
        return self.update(book_id, lambda book: edits.set_text(book, page_number, text, cast,
                                                                self.settings))

    def insert_page(self, book_id: str, after: int, text: str,
                    cast: Sequence[Character]) -> Book:
        """Add a page, not drawn yet, after page `after` (0: first). Refused while drawing."""
        with self._pages_still(book_id):
            return self.update(book_id, lambda book: edits.insert_page(book, after, text, cast,
                                                                       self.settings))

    def move_page(self, book_id: str, page_number: int, to: int) -> Book:
        """Move a page, with its pictures, to be page `to`. Refused while drawing."""
        with self._pages_still(book_id):
            return self.update(book_id, lambda book: edits.move_page(book, page_number, to))

    def delete_page(self, book_id: str, page_number: int) -> Book:
        """Delete a page, and its pictures from disk. Refused while drawing."""
        gone: set[str] = set()

        def delete(book: Book) -> Book:
            book, files = edits.delete_page(book, page_number)
            gone.update(files)
            return book

        with self._pages_still(book_id):
            book = self.update(book_id, delete)
            folder = self.folder(book_id)
            for file in gone:  # out of the record: a crash here leaves files, never a hole
                for path in (inside(folder, file), inside(folder, "thumbs", Path(file).name)):
                    path.unlink(missing_ok=True)
        return book

    def set_words(self, book_id: str, *, dedication: Optional[str] = None,
                  closing: Optional[str] = None, language: Optional[str] = None) -> Book:
        """Change the dedication, the closing line or the language (None keeps, "" removes)."""
        return self.update(book_id, lambda book: edits.set_words(
            book, dedication=dedication, closing=closing, language=language))

    @contextlib.contextmanager
    def drawing(self, book_id: str) -> Iterator[None]:
        """Mark the book as being drawn for the block (several drawers may share it): the
        order of its pages can't change meanwhile. The mark goes with the process."""
        self.get(book_id)
        with open(self.folder(book_id) / DRAWING, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _pages_still(self, book_id: str) -> Iterator[None]:
        """Hold the book's pages in place for the block, or refuse while they are drawn."""
        self.get(book_id)
        with open(self.folder(book_id) / DRAWING, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError("pages of this book are being drawn (or moved) right now; "
                                 "insert, move or delete pages when that is done") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def image_path(self, book: Book, relative: str) -> Path:
        return inside(self.folder(book.id), relative)

    def thumbnail(self, book: Book, file: Optional[str] = None) -> Optional[Path]:
        """A small PNG of one of the book's pictures (by default the cover's), made on first
        use and kept; None if there is none."""
        picture = book.cover_image if file is None else file
        if not picture:
            return None
        source = self.image_path(book, picture)
        thumb = inside(self.folder(book.id), "thumbs", Path(picture).name)
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


def _with_page(book: Book, number: int, page: BookPage) -> Book:
    pages = list(book.pages)
    pages[number - 1] = page
    return replace(book, pages=tuple(pages))
