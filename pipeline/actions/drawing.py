"""Drawing a book's pictures: the options (checked by name), the size and steps in force on
this machine, the GPU time it will cost, illustrating the missing pages, redrawing one page,
choosing a page's picture and the order its characters stand in.

A page is drawn with seeds from its own key (book.record), not its place: a page that was moved
or inserted keeps the seeds it would have had where it was made.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

from .. import turns
from ..book import Book, BookStore
from ..checks import number, text, texts, whole
from ..hardware import CPU_PICTURE_STEPS, cpu_size, detect
from ..illustrate import MAX_CANDIDATES as MAX_CANDIDATES  # for the doors' forms
from ..illustrate import (IllustrateConfig, IllustrateError, illustrate_book, page_seconds,
                          redraw_rule, regenerate_page)
from ..progress import Progress, ProgressFn, counted, format_seconds
from ..settings import Settings
from ..styles import get_style
from ..work import recorded
from .books import MAX_DRAFT_CAST, edit_scene
from .gpu import gpu_job, turns_between_reports, waiting


def drawing_options(candidates: int = 1, width: int = 0, height: int = 0, steps: int = 0,
                    adapter_weight: float = 1.0, *, face_pass: Optional[bool] = None,
                    face_strength: Optional[float] = None, face_margin: Optional[float] = None,
                    redraw_below: Optional[int] = None,
                    redraw_tries: Optional[int] = None) -> IllustrateConfig:
    """How to draw pages, from plain numbers: 0 (or None) leaves the size and steps to the
    machine (`drawing_in_force`); None keeps the settings' second pass and redraw rule. Each is
    checked by name (a string, NaN or a huge number is refused; IllustrateConfig checks the
    rest)."""
    def size(field: str, value) -> Optional[int]:
        return whole(field, 0 if value is None else value, 0, 2048) or None

    return IllustrateConfig(
        candidates=whole("candidates", 1 if candidates is None else candidates, 1,
                         MAX_CANDIDATES),
        adapter_weight=number("adapter_weight", adapter_weight, 0, 2, low_open=True),
        width=size("width", width), height=size("height", height),
        steps=whole("steps", 0 if steps is None else steps, 0, 150) or None,
        face_pass=face_pass, face_strength=face_strength, face_margin=face_margin,
        redraw_below=redraw_below, redraw_tries=redraw_tries)


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
    book = BookStore(settings, user).get(text("book_id", book_id))
    style = get_style(book.style)
    options = drawing_in_force(settings, book.style, options)
    _, tries = redraw_rule(settings, options)
    each = [page_seconds(settings, options, style, len(book.page(n).characters))
            for n in book.missing]
    if any(seconds is None for seconds in each):
        return DrawingEstimate(len(each), None, None, tries)
    with_faces = sum(s for n, s in zip(book.missing, each) if book.page(n).characters)
    return DrawingEstimate(len(each), sum(each), sum(each) + tries * with_faces, tries)


def drawing_in_force(settings: Settings, style: str,
                     options: IllustrateConfig = IllustrateConfig()) -> IllustrateConfig:
    """The options with the size and steps left open filled in as this machine draws them: the
    style's own on a GPU; without one, the style's shape at most CPU_PICTURE_SIDE px, in
    CPU_PICTURE_STEPS steps (a page in seconds on the demo model, not minutes)."""
    chosen = get_style(style)
    width, height, steps = chosen.width, chosen.height, chosen.steps
    if not detect(settings).has_gpu:
        (width, height), steps = cpu_size(width, height), min(steps, CPU_PICTURE_STEPS)
    return dataclasses.replace(options, width=options.width or width,
                               height=options.height or height, steps=options.steps or steps)


def illustrate(settings: Settings, user: str, book_id: str,
               options: IllustrateConfig = IllustrateConfig(), *, token: Optional[str] = None,
               on_progress: Optional[ProgressFn] = None) -> Book:
    """Draw every page that has no picture yet, saving each as it is drawn (calling it again
    after an interruption goes on where it stopped), at the size and steps in force here.
    Pages can't be reordered meanwhile. Each page waits for its turn on the GPU, so other
    users' pages are drawn in between. Recorded in the user's work (actions.work) with its
    progress; a cancel (there, or Cancelled from `on_progress`) stops the book at its next
    report, with its adapters let go."""
    store = BookStore(settings, user)
    book = store.get(text("book_id", book_id))
    with gpu_job(settings, user, "this book"), store.drawing(book.id), \
            recorded(settings, user, "illustration", book.id, f"Illustrating “{book.title}”",
                     on_progress) as job, \
            turns.adapters_held(waiting(job.report, 0, 1, "page")), \
            turns_between_reports(user, job.report) as report:
        book = illustrate_book(settings, user, book.id,
                               drawing_in_force(settings, book.style, options), token=token,
                               on_progress=report)
        drawn = len(book.pages) - len(book.missing)
        job.finish(f"{drawn} of {counted(len(book.pages), 'page')} have a picture",
                   {"id": book.id, "title": book.title})
    return book


def redraw_page(settings: Settings, user: str, book_id: str, page: int,
                options: IllustrateConfig = IllustrateConfig(), *,
                scene: Optional[str] = None, seed: Optional[int] = None,
                token: Optional[str] = None,
                on_progress: Optional[ProgressFn] = None) -> Book:
    """Draw new pictures for one page, optionally with an edited scene or a chosen seed; the
    first new picture becomes the page's picture and the others stay to choose from. Without
    a seed the page gets fresh ones, from its own key. It waits for its turn on the GPU,
    reporting the wait to `on_progress`."""
    book_id, page = text("book_id", book_id), whole("page", page, 1, settings.max_pages)
    store = BookStore(settings, user)
    wait = waiting(on_progress, 0, 1, "page")
    with store.drawing(book_id):
        if scene is not None:
            edit_scene(settings, user, book_id, page, scene)
        style = store.get(book_id).style
        with gpu_job(settings, user, "this page"), turns.adapters_held(wait), \
                turns.turn(user, on_wait=wait):
            if on_progress is not None:
                on_progress(Progress(0, 1, "page", f"drawing page {page}"))
            return regenerate_page(settings, user, book_id, page,
                                   drawing_in_force(settings, style, options), seed=seed,
                                   token=token)


def choose_picture(settings: Settings, user: str, book_id: str, page: int,
                   candidate: int) -> Book:
    """Make a page's picture number `candidate` (from 1, in the order drawn) the one shown."""
    store = BookStore(settings, user)
    page = whole("page", page, 1, settings.max_pages)
    candidate = whole("candidate", candidate, 1, 10_000)
    candidates = store.get(text("book_id", book_id)).page(page).candidates
    if not 1 <= candidate <= len(candidates):
        raise IllustrateError(f"page {page} has {len(candidates)} pictures; "
                              f"choose one from 1 to {len(candidates)}")
    return store.choose(book_id, page, candidates[candidate - 1].file)


def set_order(settings: Settings, user: str, book_id: str, page: int,
              names: Sequence[str]) -> Book:
    """Where a page's characters stand, left to right (empty: the order the story names them);
    the next drawing of the page uses it."""
    store = BookStore(settings, user)
    book = store.get(text("book_id", book_id))
    page = whole("page", page, 1, settings.max_pages)
    names = texts("names", names, MAX_DRAFT_CAST)
    wanted = {name.casefold(): name for name in book.page(page).characters}
    order = [wanted.get(name.strip().casefold(), name.strip()) for name in names if name.strip()]
    return store.set_order(book.id, page, order)
