"""Books: draft a story, make a book of it, edit a page's scene; edit the book once made (a
page's words, insert, delete and move pages, the dedication, closing line and language); list,
preview, read, delete and export books, and the characters a book names that can't be drawn
yet. Drawing its pictures is in drawing.py."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from .. import turns
from ..book import Book, BookStore, DamagedBook
from ..characters import CharacterStore
from ..checks import choice, flag, text, texts, whole
from ..draft import Draft, draft_story
from ..export import TRIMS as TRIMS  # the PDF's page sizes, for the doors' forms
from ..export import BookSide as BookSide
from ..export import book_sides as book_sides  # the pages of the finished book, in order
from ..export import read_aloud_script as read_aloud_script  # "Read to me", for the gallery
from ..export import Exported, export_book, file_name, named, spreads
from ..hub.repos import hub_record
from ..illustrate import (MAX_SEED, check_seed)
from ..progress import ProgressFn, counted
from ..safety import screen_text
from .likeness import book_summary, page_lines, public_score
from ..settings import Settings
from ..story import find_characters, parse_story, scene_prompt, set_scene
from ..styles import DEFAULT_STYLE, Style, get_style, load_styles
from .gpu import gpu_job, waiting

MAX_TITLE_CHARS = 200
MAX_STORY_CHARS = 200_000  # far past any book (40 pages of 1,000), short of a flood
MAX_DRAFT_CAST = 20


@dataclass(frozen=True)
class BookRow:
    """One book as every listing shows it (the thumbnail is for the app's gallery only)."""

    id: str
    title: str
    pages: int
    illustrated: int  # pages with a picture
    created: str
    updated: str
    likeness: dict  # actions.likeness.book_summary
    layouts: tuple  # per page, where each character stood when drawn: ({name, box}, ...)
    thumbnail: Optional[Path] = None  # a small PNG of the cover; None before any picture
    damaged: bool = False  # its record can't be read: it can only be deleted

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "pages": self.pages,
                "illustrated": self.illustrated, "created": self.created,
                "updated": self.updated, "likeness": self.likeness,
                "layouts": [list(page) for page in self.layouts], "damaged": self.damaged}


@dataclass(frozen=True)
class Edited:
    """A book after an edit, and what the parent should know about it ("" if nothing)."""

    book: Book
    message: str = ""


@dataclass(frozen=True)
class PreviewSide:
    """One page of the preview: the page of the book and a small copy of its picture."""

    side: BookSide
    thumbnail: Optional[Path] = None


@dataclass(frozen=True)
class DeletedBook:
    """A book that was deleted with all its pictures."""

    id: str
    title: str

    def to_json(self) -> dict:
        return {"deleted": self.id, "title": self.title}


def styles() -> dict[str, Style]:
    """The art styles, by name."""
    return load_styles()


def waiting_characters(settings: Settings, user: str, book: Book) -> list[str]:
    """What stops pages from being drawn: characters a page names that aren't trained yet (no
    adapter here or on the Hub), or that are no longer the user's characters."""
    store = CharacterStore(settings, user)
    cast = {character.name.casefold(): character for character in store.list()}
    notes = []
    for name in book.characters:
        pages = [n for n, page in enumerate(book.pages, start=1) if name in page.characters]
        where = ("page " if len(pages) == 1 else "pages ") + ", ".join(map(str, pages))
        character = cast.get(name.casefold())
        if character is None:
            notes.append(f"{name} is no longer one of your characters (deleted?), so {where} "
                         f"can't be drawn: add {name} again, or edit the scene")
        elif not store.has_adapter(character) and hub_record(settings, user, character) is None:
            notes.append(f"{name} isn't trained yet, so {where} can't be drawn: train {name} "
                         "first")
    return notes


def draft(settings: Settings, user: str, premise: str, names: Sequence[str], pages: int, *,
          seed: int = 0, on_progress: Optional[ProgressFn] = None) -> Draft:
    """Draft a story about some of the user's characters with the story language model, in
    its turn on the GPU; a premise or a draft with a word of assets/unsafe_words.txt is
    refused, naming it."""
    screen_text(text("premise", premise), "the premise")
    names = texts("characters", names, MAX_DRAFT_CAST)
    pages = whole("pages", pages, 1, settings.max_pages)
    seed = whole("seed", seed, 0, MAX_SEED)
    store = CharacterStore(settings, user)
    cast = [store.get(name) for name in names if name.strip()]
    with gpu_job(settings, user, "this draft"), turns.turn(
            user, on_wait=waiting(on_progress, 0, 1, "draft")):
        drafted = draft_story(settings, premise, cast, pages, seed=seed, on_progress=on_progress)
    for number_, page in enumerate(drafted.pages, start=1):
        for part, value in (("text", page.text), ("scene", page.scene)):
            screen_text(value, f"page {number_}'s {part} in the draft (try another seed)")
    return drafted


def new_book(settings: Settings, user: str, title: str, story: str,
             style: str = DEFAULT_STYLE, seed: Optional[int] = None) -> Book:
    """Split a story into pages with the user's characters and save it as a new book.

    No picture is drawn yet. A seed of None picks a random one, which the book records so
    every page can be redrawn exactly. A title, page or scene with a word of
    assets/unsafe_words.txt is refused, naming the page and the word.
    """
    screen_text(text("title", title, MAX_TITLE_CHARS), "the title")
    get_style(text("style", style))
    pages = parse_story(text("story", story, MAX_STORY_CHARS),
                        CharacterStore(settings, user).list(), settings)
    for number_, page in enumerate(pages, start=1):
        screen_text(page.text, f"page {number_}")
        screen_text(page.scene, f"page {number_}'s scene")
    seed = secrets.randbelow(2**31) if seed is None else check_seed(seed)
    return BookStore(settings, user).create(title, style, seed, pages)


def list_books(settings: Settings, user: str) -> list[BookRow]:
    """The user's books, newest first, each with its likeness summary, then any whose record is
    damaged (only deletable)."""
    store = BookStore(settings, user)
    rows = [BookRow(book.id, book.title, len(book.pages), len(book.pages) - len(book.missing),
                    book.created, book.updated, book_summary(book),
                    tuple(tuple({"name": r.name, "box": list(r.box)} for r in page.layout)
                          for page in book.pages), store.thumbnail(book))
            for book in store.list()]
    return rows + [BookRow(book_id, DAMAGED_TITLE, 0, 0, "", "", {}, (), damaged=True)
                   for book_id in store.damaged()]


DAMAGED_TITLE = "(a damaged book: it can't be opened, only deleted)"


def get_book(settings: Settings, user: str, book_id: str) -> Book:
    """One of the user's books."""
    return BookStore(settings, user).get(text("book_id", book_id))


def book_json(settings: Settings, user: str, book: Book) -> dict:
    """A book as the API and `--json` give it: the record, with each page's prompt as it would
    be drawn now (its scene with the characters' trigger words, look and the style), each
    picture's likeness score (without face descriptors), the book's likeness summary, and
    "waiting": why some pages can't be drawn yet (`waiting_characters`)."""
    record = book.to_json()
    style = get_style(book.style)
    cast = CharacterStore(settings, user).list()
    for page, entry in zip(book.pages, record["pages"]):
        entry["prompt"] = style.prompt(scene_prompt(page.scene, cast))
        for candidate, shown in zip(page.candidates, entry["candidates"]):
            shown["score"] = public_score(candidate.score)
        entry["likeness"] = page_lines(page.chosen.score) if page.chosen else []
    record["likeness"] = book_summary(book)
    record["waiting"] = waiting_characters(settings, user, book)
    return record


def picture_path(settings: Settings, user: str, book: Book, file: str) -> Path:
    """Where one of the book's pictures is (never outside the book's folder)."""
    return BookStore(settings, user).image_path(book, file)


def edit_scene(settings: Settings, user: str, book_id: str, page: int, scene: str) -> Book:
    """Change a page's scene (in the parent's words) without drawing it; its pictures stay.
    The page's characters become the ones the scene names; a word of
    assets/unsafe_words.txt is refused."""
    store = BookStore(settings, user)
    page = whole("page", page, 1, settings.max_pages)
    screen_text(text("scene", scene), f"page {page}'s scene")
    current = store.get(text("book_id", book_id)).page(page)
    edited = set_scene(current, scene, CharacterStore(settings, user).list(), settings,
                       label=f"page {page}'s scene")
    return store.update_page(book_id, page, scene=edited.scene, characters=edited.characters)


def edit_text(settings: Settings, user: str, book_id: str, page: int, text: str) -> Edited:
    """Change a page's words; its pictures stay. A page whose scene is its words gets the new
    words as its scene, and who is on it is found again: the message says when that changed
    (so the parent may redraw it) and names anyone in the words but not in the scene."""
    store = BookStore(settings, user)
    cast = CharacterStore(settings, user).list()
    before = store.get(book_id or "").page(page)
    book = store.set_text(book_id, page, text, cast)
    after = book.page(page)
    notes = []
    if after.characters != before.characters:
        notes.append(f"Page {page} now shows {named(after.characters) or 'nobody'} (before: "
                     f"{named(before.characters) or 'nobody'})"
                     + (": redraw it so that its picture matches." if after.illustrated
                        else "."))
    unseen = [name for name in find_characters(after.text, cast)
              if name not in after.characters]
    if unseen:
        notes.append(f"{named(unseen)} {'is' if len(unseen) == 1 else 'are'} in the words but "
                     f"not in the scene of page {page}'s picture: edit its scene to draw "
                     f"{'them' if len(unseen) > 1 else 'it'} too.")
    return Edited(book, " ".join(notes))


def insert_page(settings: Settings, user: str, book_id: str, after: int, text: str) -> Edited:
    """Add a page with these words after page `after` (0: before the first); not drawn yet."""
    book = BookStore(settings, user).insert_page(book_id or "", after, text,
                                                 CharacterStore(settings, user).list())
    page = book.page(after + 1)
    return Edited(book, f"Page {after + 1} is new ({named(page.characters) or 'nobody'} on "
                        "it) and has no picture yet.")


def delete_page(settings: Settings, user: str, book_id: str, page: int) -> Edited:
    """Delete a page, and its pictures from disk."""
    store = BookStore(settings, user)
    pictures = len(store.get(book_id or "").page(page).files)
    book = store.delete_page(book_id, page)
    return Edited(book, f"Deleted page {page}" + (f" and its {counted(pictures, 'picture')}."
                                                   if pictures else "."))


def move_page(settings: Settings, user: str, book_id: str, page: int, to: int) -> Edited:
    """Move a page, with its pictures, to be page `to`."""
    book = BookStore(settings, user).move_page(book_id or "", page, to)
    return Edited(book, f"Page {page} is now page {to}." if page != to else "")


def edit_words(settings: Settings, user: str, book_id: str, *,
               dedication: Optional[str] = None, closing: Optional[str] = None,
               language: Optional[str] = None) -> Edited:
    """Change the dedication, the closing line or the book's language (a tag such as "en" or
    "fr", for reading aloud): None keeps it, "" takes it away."""
    book = BookStore(settings, user).set_words(book_id or "", dedication=dedication,
                                                closing=closing, language=language)
    changed = [what for what, value in (("dedication", dedication), ("closing line", closing),
                                        ("language", language)) if value is not None]
    return Edited(book, f"Saved the {named(changed)}." if changed else "")


def preview(settings: Settings, user: str, book_id: str) -> list[tuple[Optional[PreviewSide],
                                                                       Optional[PreviewSide]]]:
    """The whole book as printed, in spreads (two facing pages), with small pictures."""
    store = BookStore(settings, user)
    book = store.get(book_id or "")

    def shown(side: Optional[BookSide]) -> Optional[PreviewSide]:
        if side is None:
            return None
        return PreviewSide(side, store.thumbnail(book, side.picture) if side.picture else None)

    return [(shown(left), shown(right))
            for left, right in spreads(book_sides(book, printed=True))]


def delete_book(settings: Settings, user: str, book_id: str) -> DeletedBook:
    """Delete one of the user's books with all its pictures, a damaged one too."""
    store = BookStore(settings, user)
    book_id = text("book_id", book_id)
    try:
        title = store.get(book_id).title
    except DamagedBook:
        title = DAMAGED_TITLE
    store.delete(book_id)
    return DeletedBook(book_id, title)


def export(settings: Settings, user: str, book_id: str, out: Path, *, format: str = "",
           draft: bool = False, trim: str = "screen", bleed: bool = False,
           on_progress: Optional[ProgressFn] = None) -> Exported:
    """Write a book as a PDF (to print at a trim size, with or without bleed, or "screen") or
    one HTML file. `out` is the file (its suffix says the format), or a folder, where a file
    named after the title (and the trim, for print) is made in `format`."""
    store = BookStore(settings, user)
    book = store.get(text("book_id", book_id))
    format = choice("format", format or "pdf", ("pdf", "html"))
    draft = flag("draft", draft)
    out = Path(out)
    if out.is_dir():
        fmt = format or "pdf"
        printed = "" if fmt != "pdf" or trim == "screen" else f"-{trim}" + "-bleed" * bleed
        out = out / file_name(book, f"{printed}.{fmt}")
    _check_pictures(store, book)
    return export_book(store, book, out, draft=draft, trim=trim, bleed=bleed,
                       on_progress=on_progress)


def _check_pictures(store: BookStore, book: Book) -> None:
    """Refuse, naming the page, a book whose picture (or cover) file is damaged."""
    chosen = [(f"page {n}", page.image) for n, page in enumerate(book.pages, start=1)
              if page.image]
    for where, file in chosen + ([("the cover", book.cover)] if book.cover else []):
        path = store.image_path(book, file)
        if not path.is_file():
            continue  # the export says which picture is missing
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, ValueError, SyntaxError):
            raise ValueError(f"{where}'s picture is damaged and can't be printed: redraw "
                             f"{where if where != 'the cover' else 'that page'}, or choose "
                             "another of its pictures") from None

