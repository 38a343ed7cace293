"""Editing a book after its pages are made: a page's words, inserting, deleting and moving pages,
the dedication, the closing line and the language. Each edit is a function from a Book to a new
Book (BookStore applies it under the book's lock); pictures always stay with their pages.

A page's words and its scene: a page whose scene is its text (no `Scene:` line was written)
gets the new text as its scene too, and its characters are found again; a page with a scene of
its own keeps it, and with it the characters its picture shows.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from ..characters import Character
from ..settings import Settings
from ..store import StoreError
from ..story import StoryError, clean_text, find_characters, set_scene, split_pages
from .record import Book, BookPage, cast_of, check_language, clean_words


def set_text(book: Book, number: int, text: str, cast: Sequence[Character],
             settings: Settings) -> Book:
    """The book with page `number`'s words changed; its pictures stay."""
    page = book.page(number)
    words = page_text(text, f"page {number}", settings)
    if page.scene == one_line(page.text):  # the scene follows the words
        edited = set_scene(replace(page, text=words), words, cast, settings,
                           label=f"page {number}'s scene")
    else:
        edited = replace(page, text=words, characters=find_characters(page.scene, cast))
    if edited.order and sorted(edited.order) != sorted(edited.characters):
        edited = replace(edited, order=())  # the parent's order was for other characters
    return _with_pages(book, _replaced(book.pages, number, edited))


def insert_page(book: Book, after: int, text: str, cast: Sequence[Character],
                settings: Settings) -> Book:
    """The book with a new page after page `after` (0: before the first), not drawn yet; its
    scene is its words. It gets a key no page has, so its seeds are its own."""
    if not 0 <= after <= len(book.pages):
        raise StoreError(f"can't insert after page {after}: this book has pages 1 to "
                         f"{len(book.pages)} (0 inserts before the first)")
    if len(book.pages) >= settings.max_pages:
        raise StoreError(f"this book has {len(book.pages)} pages, the limit "
                         "(TALEWEAVER_MAX_PAGES): delete a page first")
    words = page_text(text, "the new page", settings)
    page = set_scene(BookPage(text=words, scene="", key=book.next_key), words, cast, settings,
                     label="the new page's scene")
    pages = list(book.pages)
    pages.insert(after, page)
    return _with_pages(book, tuple(pages))


def delete_page(book: Book, number: int) -> tuple[Book, set[str]]:
    """The book without page `number`, and the picture files that page had (to remove)."""
    page = book.page(number)
    if len(book.pages) == 1:
        raise StoreError("a book needs at least one page: delete the book instead")
    pages = book.pages[:number - 1] + book.pages[number:]
    book = _with_pages(book, pages)
    if book.cover in page.files:
        book = replace(book, cover="")
    return book, page.files


def move_page(book: Book, number: int, to: int) -> Book:
    """The book with page `number` moved to be page `to`; the pages between shift by one."""
    page = book.page(number)
    if not 1 <= to <= len(book.pages):
        raise StoreError(f"can't move page {number} to page {to}: this book has pages 1 to "
                         f"{len(book.pages)}")
    pages = list(book.pages)
    pages.pop(number - 1)
    pages.insert(to - 1, page)
    return replace(book, pages=tuple(pages))


def set_words(book: Book, *, dedication: Optional[str] = None, closing: Optional[str] = None,
              language: Optional[str] = None) -> Book:
    """The book with a new dedication, closing line or language (None keeps it, "" removes)."""
    return replace(
        book,
        dedication=book.dedication if dedication is None else clean_words(dedication,
                                                                         "dedication"),
        closing=book.closing if closing is None else clean_words(closing, "closing line"),
        language=book.language if language is None else check_language(language))


def page_text(text: str, label: str, settings: Settings) -> str:
    """A page's words as stored: cleaned, not empty, within the limit, one page only."""
    blocks = split_pages(text or "")
    if not blocks:
        raise StoryError(f"{label}: the text is empty; write the page's words (or delete it)")
    if len(blocks) > 1:
        raise StoryError(f"{label}: the text holds {len(blocks)} pages (a blank line starts a "
                         "new page); keep one page here and insert the others after it")
    words = clean_text(blocks[0]).strip()
    if len(words) > settings.max_page_chars:
        raise StoryError(f"{label} has {len(words)} characters; the limit is "
                         f"{settings.max_page_chars} per page (TALEWEAVER_MAX_PAGE_CHARS)")
    return words


def one_line(text: str) -> str:
    """Text as a scene made from it reads: on one line, spaces collapsed."""
    return " ".join(clean_text(text).split())


def _replaced(pages: tuple[BookPage, ...], number: int, page: BookPage) -> tuple[BookPage, ...]:
    return pages[:number - 1] + (page,) + pages[number:]


def _with_pages(book: Book, pages: tuple[BookPage, ...]) -> Book:
    """The book with these pages, and its cast (who appears in it) made from them."""
    return replace(book, pages=pages, characters=cast_of(pages))
