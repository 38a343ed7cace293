"""The Book record (a story's pages with their illustrations) and the per-user store of books.

    <user>/books/<book id>/book.json     the record below
    <user>/books/<book id>/images/*.png  every illustration made for the book, full resolution
"""
from __future__ import annotations

import secrets
from io import BytesIO
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from .settings import Settings
from .store import (StoreError, atomic_write_bytes, atomic_write_json, inside, locked,
                    read_json, remove_tree, user_dir)
from .story import Page

RECORD = "book.json"


@dataclass(frozen=True)
class Illustration:
    """One image made for a page, with the seed and full prompt that reproduce it."""

    file: str  # relative to the book folder, e.g. "images/p01-1234.png"
    seed: int
    prompt: str


@dataclass(frozen=True)
class BookPage(Page):
    """A story page in a book: the chosen illustration and every candidate made for it."""

    image: str = ""  # the chosen illustration's file; "" until the page is illustrated
    candidates: tuple[Illustration, ...] = ()

    @property
    def illustrated(self) -> bool:
        return bool(self.image)


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

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> "Book":
        pages = tuple(
            BookPage(text=p["text"], scene=p["scene"], characters=tuple(p["characters"]),
                     image=p.get("image", ""),
                     candidates=tuple(Illustration(**c) for c in p.get("candidates", ())))
            for p in record["pages"])
        return cls(id=record["id"], title=record["title"], style=record["style"],
                   seed=int(record["seed"]), pages=pages, created=record["created"],
                   updated=record["updated"], cover=record.get("cover", ""),
                   characters=tuple(record.get("characters", ())))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class BookStore:
    """One user's books on disk; ids are generated here, never taken from titles."""

    def __init__(self, settings: Settings, user: str):
        self.root = user_dir(settings, user) / "books"

    def create(self, title: str, style: str, seed: int, pages: list[Page]) -> Book:
        """A new book with these pages, not yet illustrated, saved at once."""
        stamp = now()
        characters = tuple(dict.fromkeys(name for page in pages for name in page.characters))
        book = Book(id=secrets.token_hex(8), title=title.strip(), style=style, seed=seed,
                    pages=tuple(BookPage(p.text, p.scene, tuple(p.characters)) for p in pages),
                    created=stamp, updated=stamp, characters=characters)
        self.save(book)
        return book

    def folder(self, book_id: str) -> Path:
        if not book_id.isalnum():
            raise StoreError(f"{book_id!r} is not a book id")
        return inside(self.root, book_id)

    def get(self, book_id: str) -> Book:
        folder = self.folder(book_id)
        if not (folder / RECORD).is_file():
            raise StoreError(f"no book with id {book_id!r}")
        return Book.from_json(read_json(folder / RECORD))

    def save(self, book: Book) -> Book:
        """Write the record atomically, stamping `updated`; returns the saved book."""
        book = replace(book, updated=now())
        with locked(self.folder(book.id)):
            atomic_write_json(self.folder(book.id) / RECORD, book.to_json())
        return book

    def save_image(self, book: Book, page_number: int, seed: int, image: Image.Image) -> str:
        """Store one illustration as PNG; returns its file name relative to the book folder."""
        relative = f"images/p{page_number:02d}-{seed}.png"
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        atomic_write_bytes(self.folder(book.id) / relative, buffer.getvalue())
        return relative

    def image_path(self, book: Book, relative: str) -> Path:
        return inside(self.folder(book.id), relative)

    def delete(self, book_id: str) -> None:
        folder = self.folder(book_id)
        if not folder.is_dir():
            raise StoreError(f"no book with id {book_id!r}")
        remove_tree(folder)
