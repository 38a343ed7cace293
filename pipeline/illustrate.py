"""Pages to pictures, each checked against the real faces of the characters on it.

For each page exactly the adapters of its characters are used, its seeds come from the book's
seed and the page number, and its pictures are saved as soon as they are drawn, so an
interrupted book continues from the first page without a picture. With the second pass on
(compose.py), a page with characters is first drawn with them as their kinds, left to right in
its order, then each head is redrawn with only that character's adapter; off, a page is drawn
as before, with its characters' adapters over the whole picture.

Every picture passes the picture safety check (safety.py) before it is saved: a flagged one
is drawn again with another seed, and a page whose every picture stays flagged is not drawn
but marked with why. Every picture of a page with characters is then scored (likeness.py) on
the CPU, in a thread of its own while the next page is drawn (so on ZeroGPU it costs no GPU
time): the best candidate becomes the page's picture unless a parent chose one, and a page
whose weakest character is not found, below the redraw threshold or looks like another gets
more seeds, up to the redraw tries, keeping the best picture it saw. A page whose character has
no adapter (never trained, deleted, or not fetchable) is skipped and marked with the reason.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from PIL import Image

from . import likeness
from .adapter_files import ADAPTER_WEIGHTS
from .adapters import AdapterRef, adapters_held
from .book import Book, BookPage, BookStore, Region
from .checks import shown
from .characters import Character, CharacterStore
from .compose import PassOptions
from .hardware import detect, on_zerogpu
from .hub.repos import AdapterUnavailableError, ensure_local_adapter
from .models import load_pipeline
from .page_job import page_job, page_order
from .progress import Progress, ProgressFn
from .render import RenderJob, render
from .safety import SAFETY_TRIES, draw_safely
from .settings import Settings
from .styles import Style, get_style
from .training.config import TrainConfig
from .training.estimate import image_seconds

MAX_CANDIDATES = 4  # pictures per page in one go
UNSAFE = ("it could not be drawn safely: the picture safety check flagged every picture, "
          "{tries} tries each; change its scene and draw it again")
MAX_SEED = 2**32 - 1
MAX_REDRAW_TRIES = 8


class IllustrateError(ValueError):
    """A request the illustrator can't honour (a bad seed, page or option); the message says why."""


@dataclass(frozen=True)
class IllustrateConfig:
    """How pages are drawn. Size and steps default to the book's style; tests and CPU demos
    override them (64x64 in 2 steps). None for the second pass and the redraw rule means the
    settings' (TALEWEAVER_FACE_PASS*, TALEWEAVER_REDRAW_*)."""

    candidates: int = 1  # pictures per page to choose from
    adapter_weight: float = 1.0  # strength of each character's adapter on its pages
    width: Optional[int] = None  # None: the style's SDXL size
    height: Optional[int] = None
    steps: Optional[int] = None  # None: the style's steps
    face_pass: Optional[bool] = None  # redraw each character's head with only its adapter
    face_strength: Optional[float] = None  # how much of the head the second pass redraws
    face_margin: Optional[float] = None  # room around a face, in face sides
    redraw_below: Optional[int] = None  # redraw a page whose weakest likeness is under this
    redraw_tries: Optional[int] = None  # more seeds at most for such a page

    def __post_init__(self) -> None:
        if not self._whole(self.candidates, 1, MAX_CANDIDATES):
            raise IllustrateError(f"candidates must be from 1 to {MAX_CANDIDATES}, "
                                  f"not {shown(self.candidates)}")
        weight = self.adapter_weight
        if not (self._number(weight) and 0 < weight <= 2):
            raise IllustrateError(f"adapter_weight must be above 0 and at most 2, "
                                  f"not {shown(weight)}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not (self._whole(value, 64, 2048) and value % 8 == 0):
                raise IllustrateError(f"{name} must be a multiple of 8 from 64 to 2048, "
                                      f"not {shown(value)}")
        if self.steps is not None and not self._whole(self.steps, 1, 150):
            raise IllustrateError(f"steps must be from 1 to 150, not {shown(self.steps)}")
        if self.face_pass is not None and not isinstance(self.face_pass, bool):
            raise IllustrateError(f"face_pass must be true or false, not {shown(self.face_pass)}")
        if self.face_strength is not None and not (self._number(self.face_strength)
                                                   and 0 < self.face_strength <= 1):
            raise IllustrateError(f"face_strength must be above 0 and at most 1, "
                                  f"not {shown(self.face_strength)}")
        if self.face_margin is not None and not (self._number(self.face_margin)
                                                 and 0 <= self.face_margin <= 2):
            raise IllustrateError(f"face_margin must be from 0 to 2, not {shown(self.face_margin)}")
        if self.redraw_below is not None and not self._whole(self.redraw_below, 0, 100):
            raise IllustrateError(f"redraw_below must be from 0 to 100, "
                                  f"not {shown(self.redraw_below)}")
        if self.redraw_tries is not None and not self._whole(self.redraw_tries, 0,
                                                             MAX_REDRAW_TRIES):
            raise IllustrateError(f"redraw_tries must be from 0 to {MAX_REDRAW_TRIES}, "
                                  f"not {shown(self.redraw_tries)}")

    @staticmethod
    def _whole(value: object, low: int, high: int) -> bool:
        """An int (not a bool) from low to high."""
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    @staticmethod
    def _number(value: object) -> bool:
        """A finite int or float (not a bool)."""
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))


def redraw_rule(settings: Settings, config: IllustrateConfig) -> tuple[int, int]:
    """(threshold, tries) of the weak-page redraw: the call's, else the settings'; tries -1
    means none on ZeroGPU (each try spends the visitor's GPU minutes) and 2 elsewhere."""
    below = settings.redraw_below if config.redraw_below is None else config.redraw_below
    tries = settings.redraw_tries if config.redraw_tries is None else config.redraw_tries
    if tries < 0:
        tries = 0 if on_zerogpu() else 2
    return below, tries


def page_seconds(settings: Settings, config: IllustrateConfig, style: Style,
                 characters: int) -> Optional[float]:
    """GPU seconds to draw one page's candidates with this many characters, the second pass
    included (from the step times this hardware measured or the public table; None where
    neither is known, e.g. the CPU)."""
    image = image_seconds(settings, detect(settings), TrainConfig(), 1)
    if image is None:
        return None
    steps = config.steps or style.steps
    width, height = config.width or style.width, config.height or style.height
    first = steps * width * height / settings.resolution ** 2
    face_pass = settings.face_pass == "on" if config.face_pass is None else config.face_pass
    strength = config.face_strength or settings.face_pass_strength
    second = characters * steps * strength if face_pass else 0
    return config.candidates * image * (first + second)


def page_seed(book_seed: int, page_number: int) -> int:
    """The first seed of a page: the same for every run of a book, different for every page."""
    digest = hashlib.sha256(f"taleweaver:{book_seed}:{page_number}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def illustrate_book(settings: Settings, user: str, book_id: str,
                    config: IllustrateConfig = IllustrateConfig(), *, token: Optional[str] = None,
                    on_progress: Optional[ProgressFn] = None) -> Book:
    """Draw every page that has no picture yet, saving each as it is drawn, scoring it, and
    redrawing weak pages within the redraw rule.

    After a failure at page 7, pages 1 to 6 are kept and calling this again goes on at page 7.
    """
    drawing = _Drawing(settings, user, book_id, config, token)
    todo = [n for n in drawing.book.missing if n not in drawing.waiting]
    drawing.store.set_waiting(book_id, drawing.waiting)
    report = on_progress or (lambda progress: None)
    if not todo:
        return drawing.store.get(book_id)
    report(Progress(0, len(todo), "page", "loading the model and the characters' adapters"))
    _, tries = redraw_rule(settings, config)
    started, finished, retried = time.monotonic(), 0, {n: 0 for n in todo}
    queue = deque(todo)
    with drawing.adapters(), _Scorer(drawing) as scorer:
        while queue or scorer.pending:
            if queue:
                number = queue.popleft()
                files = drawing.draw(number, on_progress=report, done=finished, total=len(todo))
                if not files:
                    report(Progress(finished, len(todo), "page",
                                    f"page {number}: " + UNSAFE.format(tries=SAFETY_TRIES)))
                scorer.submit(number, files)
            for number, weak in scorer.results(wait=not queue):
                if weak and retried[number] < tries:
                    retried[number] += 1
                    queue.append(number)
                    report(Progress(finished, len(todo), "page", f"page {number}: {weak}; "
                                    f"drawing it again (try {retried[number]} of {tries})"))
                    continue
                finished += 1
                per_page = (time.monotonic() - started) / finished
                report(Progress(finished, len(todo), "page",
                                f"page {number} of {len(drawing.book.pages)} done",
                                seconds_left=per_page * (len(todo) - finished)))
    return drawing.store.get(book_id)


def regenerate_page(settings: Settings, user: str, book_id: str, page_number: int,
                    config: IllustrateConfig = IllustrateConfig(), *,
                    seed: Optional[int] = None, token: Optional[str] = None) -> Book:
    """Draw new pictures for one page, with fresh seeds or a chosen one, and score them.

    The new pictures join the page's candidates and the best new one becomes its picture.
    Without a seed the page gets fresh seeds; with one, the same seed and scene redraw the same
    picture.
    """
    drawing = _Drawing(settings, user, book_id, config, token, pages=(page_number,))
    if page_number in drawing.waiting:
        raise AdapterUnavailableError(drawing.waiting[page_number])
    with drawing.adapters():
        files = drawing.draw(page_number, first=None if seed is None else check_seed(seed))
        if not files:
            raise IllustrateError(f"page {page_number}: "
                                  + UNSAFE.format(tries=SAFETY_TRIES))
        drawing.score(page_number, files, best_of=files)
    return drawing.store.get(book_id)


def rescore_book(settings: Settings, user: str, book_id: str, *,
                 on_progress: Optional[ProgressFn] = None) -> Book:
    """Score every picture of every page again; on each page the best becomes its picture
    unless a parent chose one."""
    drawing = _Drawing(settings, user, book_id, IllustrateConfig(), None, pages=())
    report = on_progress or (lambda progress: None)
    for number, page in enumerate(drawing.book.pages, start=1):
        drawing.score(number, [c.file for c in page.candidates])
        report(Progress(number, len(drawing.book.pages), "page", "scoring the pictures"))
    return drawing.store.get(book_id)


class _Drawing:
    """One call's drawing of some pages of a book: its style, characters and adapters."""

    def __init__(self, settings: Settings, user: str, book_id: str, config: IllustrateConfig,
                 token: Optional[str], pages: Optional[Sequence[int]] = None):
        self.settings, self.user, self.config = settings, user, config
        self.store = BookStore(settings, user)
        self.book = self.store.get(book_id)
        numbers = pages if pages is not None else self.book.missing
        self.style = get_style(self.book.style)
        characters = CharacterStore(settings, user)
        self.cast = {c.name: c for c in characters.list()}
        self.refs, self.waiting = _adapters(settings, user, numbers, self.book,
                                            config.adapter_weight, token)
        self._characters = characters
        self._identities: dict[str, Optional[likeness.Identity]] = {}

    def adapters(self):
        """The book's adapters held for the whole call (on ZeroGPU each render call loads its
        page's adapters in its own worker)."""
        if on_zerogpu():
            return contextlib.nullcontext()
        return adapters_held(load_pipeline(self.settings), self.refs.values(),
                             self.settings.adapter_cache)

    def draw(self, number: int, first: Optional[int] = None, *,
             on_progress: Optional[ProgressFn] = None, done: int = 0, total: int = 1) -> list[str]:
        """Render a page's candidates and save them (the first shown until scored); returns
        their files. Seeds continue after the page's earlier pictures unless `first` is given."""
        page = self.store.get(self.book.id).page(number)
        if first is None:  # from the page's own key: a moved page keeps its seeds
            first = page_seed(self.book.seed, page.key) + len(page.candidates)
        seeds = _seeds(first, self.config.candidates)
        job, layout = self._job(page, seeds)

        def step(message: str) -> None:
            on_progress(Progress(done, total, "page", f"page {number}: {message}"))

        # Within a page: each denoising step and pass (not on ZeroGPU, whose worker can't call
        # back into this process).
        on_step = None if on_progress is None or on_zerogpu() else step
        drawn = draw_safely(self.settings, lambda now: render(
            self.settings, dataclasses.replace(job, seeds=tuple(now)), on_step=on_step),
            seeds, image=lambda picture: picture.image)
        if layout:
            self.store.set_layout(self.book.id, number, layout)
        flagged = sum(1 for d in drawn if d.image is None)
        for picture in (d.image for d in drawn if d.image is not None):
            if picture.failed and on_progress is not None:
                step(f"redrawing the faces failed ({picture.failed}); the picture keeps its "
                     "first pass")
        if flagged == len(drawn):
            if not page.candidates:  # nothing to show for it: the page says why
                self.store.mark_waiting(self.book.id, number, UNSAFE.format(tries=SAFETY_TRIES))
            return []
        if flagged and on_progress is not None:
            step(f"{flagged} of its pictures was flagged by the safety check on every try and "
                 "is left out")
        files = []
        for index, safe in enumerate(d for d in drawn if d.image is not None):
            book = self.store.add_illustration(self.book.id, number, safe.image.image,
                                               seed=safe.seed, prompt=job.prompt,
                                               choose=index == 0)
            files.append(book.page(number).candidates[-1].file)
        return files

    def score(self, number: int, files: Sequence[str],
              best_of: Optional[Sequence[str]] = None) -> Optional[str]:
        """Score these pictures of a page and keep the scores; the best (of `best_of`, else of
        every scored picture of the page) becomes its picture unless a parent chose one.
        Returns why the page is weak, or None."""
        page = self.store.get(self.book.id).page(number)
        if not page.characters or not files:
            return None
        cast = [(name, self._identity(name)) for name in page_order(page)]
        scores = {}
        for file in files:
            with Image.open(self.store.image_path(self.book, file)) as image:
                scores[file] = likeness.score_page(image.convert("RGB"), cast)
        pool = {c.file: likeness.PageScore.from_json(c.score) for c in page.candidates
                if c.score and (best_of is None or c.file in best_of)}
        pool.update({f: s for f, s in scores.items() if best_of is None or f in best_of})
        ranked = list(pool)
        best = ranked[likeness.rank([pool[f] for f in ranked])[0]]
        self.store.record_scores(self.book.id, number,
                                 {f: s.to_json(full=True) for f, s in scores.items()}, best)
        below, _ = redraw_rule(self.settings, self.config)
        if not likeness.needs_redraw(pool[best], below):
            return None
        return "; ".join(c.describe() for c in pool[best].characters
                         if c.scored and (not c.found or c.looks_like or c.likeness < below))

    def _identity(self, name: str) -> Optional[likeness.Identity]:
        if name not in self._identities:
            character = self.cast.get(name)
            self._identities[name] = None if character is None else \
                likeness.character_identity(self._characters, character)
        return self._identities[name]

    def _job(self, page: BookPage, seeds: tuple[int, ...]) -> tuple[RenderJob, list[Region]]:
        """The page's render job (page_job.py) at the size, steps and second pass in force."""
        face_pass = (self.settings.face_pass == "on" if self.config.face_pass is None
                     else self.config.face_pass)
        steps = self.config.steps or self.style.steps
        second = PassOptions(
            strength=self.config.face_strength or self.settings.face_pass_strength,
            margin=(self.settings.face_pass_margin if self.config.face_margin is None
                    else self.config.face_margin),
            side=self.settings.resolution, steps=steps, guidance=self.style.guidance)
        return page_job(page, self.cast, self.refs, self.style, seeds,
                        width=self.config.width or self.style.width,
                        height=self.config.height or self.style.height, steps=steps,
                        second_pass=second if face_pass else None)


class _Scorer:
    """Scores pages in a thread of its own while the next page is drawn (CPU only)."""

    def __init__(self, drawing: _Drawing):
        self.drawing = drawing
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="likeness")
        self.futures: list[tuple[int, Future]] = []

    def __enter__(self) -> "_Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    @property
    def pending(self) -> bool:
        return bool(self.futures)

    def submit(self, number: int, files: list[str]) -> None:
        self.futures.append((number, self.pool.submit(self.drawing.score, number, files)))

    def results(self, wait: bool) -> list[tuple[int, Optional[str]]]:
        """The pages scored so far, in order, with why each is weak (or None); with `wait`,
        at least the oldest. A scoring error is raised here."""
        ready = []
        while self.futures and (self.futures[0][1].done() or (wait and not ready)):
            number, future = self.futures.pop(0)
            ready.append((number, future.result()))
        return ready


def _adapters(settings: Settings, user: str, numbers: Iterable[int], book: Book, weight: float,
              token: Optional[str]) -> tuple[dict[str, AdapterRef], dict[int, str]]:
    """Each character's adapter on these pages (fetched from the user's Hub repo if it isn't
    local), and the pages that must wait, with why (a character never trained, deleted, or not
    fetchable now)."""
    store = CharacterStore(settings, user)
    refs, missing = {}, {}
    for name in sorted({n for number in numbers for n in book.page(number).characters}):
        try:
            character = store.get(name)
        except ValueError:
            missing[name] = f"{name} is not one of your characters any more; add {name} again"
            continue
        try:
            folder = ensure_local_adapter(settings, user, character, token)
        except AdapterUnavailableError as err:
            missing[name] = str(err)
            continue
        refs[name] = adapter_ref(character, folder, weight)
    waiting = {number: "; ".join(missing[n] for n in book.page(number).characters if n in missing)
               for number in numbers if any(n in missing for n in book.page(number).characters)}
    return refs, waiting


def adapter_ref(character: Character, folder, weight: float) -> AdapterRef:
    """A character's adapter for a render call, named by its weights file's time, so that a
    retrained adapter is never mistaken for the one a pipeline may still hold, and so that
    every call drawing this character (a book's page, a try) shares the adapter cache."""
    stamp = (folder / ADAPTER_WEIGHTS).stat().st_mtime_ns
    tag = hashlib.sha256(f"{folder}:{stamp}".encode()).hexdigest()[:8]
    return AdapterRef(f"tw_{character.slug.replace('-', '_')}_{tag}", str(folder), weight)


def _seeds(first: int, count: int) -> tuple[int, ...]:
    return tuple((first + i) % (MAX_SEED + 1) for i in range(count))


def check_seed(seed: int) -> int:
    """A seed as pictures take it: a whole number from 0 to MAX_SEED."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise IllustrateError(f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return seed
