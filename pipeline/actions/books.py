"""Books: draft a story, make a book of it, edit a page's scene, illustrate it, redraw a page,
choose a picture; edit the book once made (a page's words, insert, delete and move pages, the
dedication, closing line and language); list, preview, read, delete and export books.

A page is drawn with seeds from its own key (book.record), not its place: a page that was moved
or inserted keeps the seeds it would have had where it was made.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..book import Book, BookStore
from ..characters import CharacterStore
from ..draft import Draft, draft_story
from ..export import TRIMS as TRIMS  # the PDF's page sizes, for the doors' forms
from ..export import BookSide as BookSide
from ..export import book_sides as book_sides  # the pages of the finished book, in order
from ..export import read_aloud_script as read_aloud_script  # "Read to me", for the gallery
from ..export import Exported, export_book, file_name, named, spreads
from ..illustrate import MAX_CANDIDATES as MAX_CANDIDATES  # for the doors' forms
from ..illustrate import (IllustrateConfig, IllustrateError, check_seed,
                          illustrate_book, page_seconds, redraw_rule, regenerate_page)
from ..progress import ProgressFn, counted, format_seconds
from .likeness import book_summary, page_lines, public_score
from ..settings import Settings
from ..story import find_characters, parse_story, scene_prompt, set_scene
from ..styles import DEFAULT_STYLE, Style, get_style, load_styles


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

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "pages": self.pages,
                "illustrated": self.illustrated, "created": self.created,
                "updated": self.updated, "likeness": self.likeness,
                "layouts": [list(page) for page in self.layouts]}


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


def drawing_options(candidates: int = 1, width: int = 0, height: int = 0, steps: int = 0,
                    adapter_weight: float = 1.0, *, face_pass: Optional[bool] = None,
                    face_strength: Optional[float] = None, face_margin: Optional[float] = None,
                    redraw_below: Optional[int] = None,
                    redraw_tries: Optional[int] = None) -> IllustrateConfig:
    """How to draw pages, from plain numbers: 0 (or None) keeps the style's size and steps;
    None keeps the settings' second pass and redraw rule."""
    return IllustrateConfig(candidates=int(candidates or 1), adapter_weight=float(adapter_weight),
                            width=int(width or 0) or None, height=int(height or 0) or None,
                            steps=int(steps or 0) or None, face_pass=face_pass,
                            face_strength=face_strength, face_margin=face_margin,
                            redraw_below=redraw_below,
                            redraw_tries=redraw_tries)


def drawing_defaults(settings: Settings) -> dict:
    """The second pass and redraw rule in force here (what the app's picture options show)."""
    below, tries = redraw_rule(settings, IllustrateConfig())
    return {"face_pass": settings.face_pass == "on", "redraw_below": below,
            "redraw_tries": tries}


@dataclass(frozen=True)
class DrawingEstimate:
    """GPU time to draw a book's missing pages, once each and at most with weak-page redraws."""

    pages: int
    seconds: Optional[float]  # None where no step time is known (the CPU)
    with_redraws: Optional[float]
    tries: int

    def describe(self) -> str:
        if not self.pages:
            return "Nothing left to draw."
        if self.seconds is None:
            return (f"{counted(self.pages, 'page')} to draw; no GPU time estimate on this "
                    "machine")
        text = f"{counted(self.pages, 'page')} to draw: about {format_seconds(self.seconds)} " \
               "of GPU time"
        if self.tries:
            text += (f", up to {format_seconds(self.with_redraws)} if weak pages are drawn "
                     f"again ({counted(self.tries, 'more try', 'more tries')} each at most)")
        return text

    def to_json(self) -> dict:
        return {"pages": self.pages, "seconds": self.seconds,
                "with_redraws": self.with_redraws, "tries": self.tries,
                "text": self.describe()}


def estimate_drawing(settings: Settings, user: str, book_id: str,
                     options: IllustrateConfig = IllustrateConfig()) -> DrawingEstimate:
    """The GPU time the book's missing pages will cost, shown before drawing them."""
    book = BookStore(settings, user).get(book_id or "")
    style = get_style(book.style)
    _, tries = redraw_rule(settings, options)
    each = [page_seconds(settings, options, style, len(book.page(n).characters))
            for n in book.missing]
    if any(seconds is None for seconds in each):
        return DrawingEstimate(len(each), None, None, tries)
    with_faces = sum(s for n, s in zip(book.missing, each) if book.page(n).characters)
    return DrawingEstimate(len(each), sum(each), sum(each) + tries * with_faces, tries)


def draft(settings: Settings, user: str, premise: str, names: Sequence[str], pages: int, *,
          seed: int = 0, on_progress: Optional[ProgressFn] = None) -> Draft:
    """Draft a story about some of the user's characters with the story language model."""
    store = CharacterStore(settings, user)
    cast = [store.get(name) for name in names if name.strip()]
    return draft_story(settings, premise, cast, pages, seed=seed, on_progress=on_progress)


def new_book(settings: Settings, user: str, title: str, story: str,
             style: str = DEFAULT_STYLE, seed: Optional[int] = None) -> Book:
    """Split a story into pages with the user's characters and save it as a new book.

    No picture is drawn yet. A seed of None picks a random one, which the book records so
    every page can be redrawn exactly.
    """
    get_style(style)
    pages = parse_story(story, CharacterStore(settings, user).list(), settings)
    seed = secrets.randbelow(2**31) if seed is None else check_seed(seed)
    return BookStore(settings, user).create(title, style, seed, pages)


def list_books(settings: Settings, user: str) -> list[BookRow]:
    """The user's books, newest first, each with its likeness summary."""
    store = BookStore(settings, user)
    return [BookRow(book.id, book.title, len(book.pages), len(book.pages) - len(book.missing),
                    book.created, book.updated, book_summary(book),
                    tuple(tuple({"name": r.name, "box": list(r.box)} for r in page.layout)
                          for page in book.pages), store.thumbnail(book))
            for book in store.list()]


def get_book(settings: Settings, user: str, book_id: str) -> Book:
    """One of the user's books."""
    return BookStore(settings, user).get(book_id or "")


def book_json(settings: Settings, user: str, book: Book) -> dict:
    """A book as the API and `--json` give it: the record, with each page's prompt as it would
    be drawn now (its scene with the characters' trigger words, look and the style), each
    picture's likeness score (without face descriptors), and the book's likeness summary."""
    record = book.to_json()
    style = get_style(book.style)
    cast = CharacterStore(settings, user).list()
    for page, entry in zip(book.pages, record["pages"]):
        entry["prompt"] = style.prompt(scene_prompt(page.scene, cast))
        for candidate, shown in zip(page.candidates, entry["candidates"]):
            shown["score"] = public_score(candidate.score)
        entry["likeness"] = page_lines(page.chosen.score) if page.chosen else []
    record["likeness"] = book_summary(book)
    return record


def picture_path(settings: Settings, user: str, book: Book, file: str) -> Path:
    """Where one of the book's pictures is (never outside the book's folder)."""
    return BookStore(settings, user).image_path(book, file)


def edit_scene(settings: Settings, user: str, book_id: str, page: int, scene: str) -> Book:
    """Change a page's scene (in the parent's words) without drawing it; its pictures stay.
    The page's characters become the ones the scene names."""
    store = BookStore(settings, user)
    current = store.get(book_id).page(page)
    edited = set_scene(current, scene, CharacterStore(settings, user).list(), settings,
                       label=f"page {page}'s scene")
    return store.update_page(book_id, page, scene=edited.scene, characters=edited.characters)


def illustrate(settings: Settings, user: str, book_id: str,
               options: IllustrateConfig = IllustrateConfig(), *, token: Optional[str] = None,
               on_progress: Optional[ProgressFn] = None) -> Book:
    """Draw every page that has no picture yet, saving each as it is drawn (calling it again
    after an interruption goes on where it stopped). Pages can't be reordered meanwhile."""
    with BookStore(settings, user).drawing(book_id or ""):
        return illustrate_book(settings, user, book_id, options, token=token,
                               on_progress=on_progress)


def redraw_page(settings: Settings, user: str, book_id: str, page: int,
                options: IllustrateConfig = IllustrateConfig(), *,
                scene: Optional[str] = None, seed: Optional[int] = None,
                token: Optional[str] = None) -> Book:
    """Draw new pictures for one page, optionally with an edited scene or a chosen seed; the
    first new picture becomes the page's picture and the others stay to choose from. Without
    a seed the page gets fresh ones, from its own key."""
    store = BookStore(settings, user)
    with store.drawing(book_id or ""):
        if scene is not None:
            edit_scene(settings, user, book_id, page, scene)
        return regenerate_page(settings, user, book_id, page, options, seed=seed, token=token)


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


def choose_picture(settings: Settings, user: str, book_id: str, page: int,
                   candidate: int) -> Book:
    """Make a page's picture number `candidate` (from 1, in the order drawn) the one shown."""
    store = BookStore(settings, user)
    candidates = store.get(book_id).page(page).candidates
    if not 1 <= candidate <= len(candidates):
        raise IllustrateError(f"page {page} has {len(candidates)} pictures; "
                              f"choose one from 1 to {len(candidates)}")
    return store.choose(book_id, page, candidates[candidate - 1].file)


def set_order(settings: Settings, user: str, book_id: str, page: int,
              names: Sequence[str]) -> Book:
    """Where a page's characters stand, left to right (empty: the order the story names them);
    the next drawing of the page uses it."""
    store = BookStore(settings, user)
    book = store.get(book_id or "")
    wanted = {name.casefold(): name for name in book.page(page).characters}
    order = [wanted.get(name.strip().casefold(), name.strip()) for name in names if name.strip()]
    return store.set_order(book.id, page, order)


def delete_book(settings: Settings, user: str, book_id: str) -> DeletedBook:
    """Delete one of the user's books with all its pictures."""
    store = BookStore(settings, user)
    book = store.get(book_id or "")
    store.delete(book.id)
    return DeletedBook(book.id, book.title)


def export(settings: Settings, user: str, book_id: str, out: Path, *, format: str = "",
           draft: bool = False, trim: str = "screen", bleed: bool = False,
           on_progress: Optional[ProgressFn] = None) -> Exported:
    """Write a book as a PDF (to print at a trim size, with or without bleed, or "screen") or
    one HTML file. `out` is the file (its suffix says the format), or a folder, where a file
    named after the title (and the trim, for print) is made in `format`."""
    store = BookStore(settings, user)
    book = store.get(book_id or "")
    out = Path(out)
    if out.is_dir():
        fmt = format or "pdf"
        printed = "" if fmt != "pdf" or trim == "screen" else f"-{trim}" + "-bleed" * bleed
        out = out / file_name(book, f"{printed}.{fmt}")
    return export_book(store, book, out, draft=draft, trim=trim, bleed=bleed,
                       on_progress=on_progress)

