"""Pages to pictures: SDXL with the adapters of the characters on each page, in the book's style.

For each page exactly the adapters of its characters are active (none on a page without any),
its seeds come from the book's seed and the page number, and it is saved as soon as it is
drawn, so an interrupted book continues from the first page without a picture. A book loads
its adapters once and switches them per page; the shared cached pipeline is left as it was
found (our adapters, and the LoRA layers they added, are removed at the end). Adapter changes
and drawing hold `models.pipeline_lock()`, so a page waits for a training chunk running on the
shared pipeline in another thread; while a book holds adapters, training in this process refuses
to start (models.PipelineInUseError), since it needs the base model alone.

On ZeroGPU each page is one `gpu()` call (`render`) with a duration estimate, and adapters are
loaded inside that call: the main process only emulates CUDA there, and whatever a forked
worker changes is gone when it returns.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Sequence

from PIL import Image

from .adapter_files import ADAPTER_WEIGHTS
from .book import Book, BookStore
from .checks import shown
from .characters import Character, CharacterStore
from .hardware import ZEROGPU_CALL_SECONDS, gpu, on_zerogpu
from .hub.repos import ensure_local_adapter
from .models import load_pipeline, pipeline_lock
from .progress import Progress, ProgressFn
from .settings import Settings
from .story import Page, scene_prompt
from .styles import Style, get_style

MAX_CANDIDATES = 4  # pictures per page in one go
MAX_SEED = 2**32 - 1

# The cached pipeline is shared by every thread of the process (the app's users, training):
# adapter changes and generation hold models.pipeline_lock(), and each loaded adapter counts
# the blocks using it (guarded by that lock too).
_holders: dict[tuple[int, str], int] = {}


class IllustrateError(ValueError):
    """A request the illustrator can't honour (a bad seed, page or option); the message says why."""


@dataclass(frozen=True)
class IllustrateConfig:
    """How pages are drawn. Size and steps default to the book's style; tests and CPU demos
    override them (64x64 in 2 steps)."""

    candidates: int = 1  # pictures per page to choose from
    adapter_weight: float = 1.0  # strength of each character's adapter on its pages
    width: Optional[int] = None  # None: the style's SDXL size
    height: Optional[int] = None
    steps: Optional[int] = None  # None: the style's steps

    def __post_init__(self) -> None:
        if not self._whole(self.candidates, 1, MAX_CANDIDATES):
            raise IllustrateError(f"candidates must be from 1 to {MAX_CANDIDATES}, "
                                  f"not {shown(self.candidates)}")
        weight = self.adapter_weight
        if not (isinstance(weight, (int, float)) and not isinstance(weight, bool)
                and math.isfinite(weight) and 0 < weight <= 2):
            raise IllustrateError(f"adapter_weight must be above 0 and at most 2, "
                                  f"not {shown(weight)}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not (self._whole(value, 64, 2048) and value % 8 == 0):
                raise IllustrateError(f"{name} must be a multiple of 8 from 64 to 2048, "
                                      f"not {shown(value)}")
        if self.steps is not None and not self._whole(self.steps, 1, 150):
            raise IllustrateError(f"steps must be from 1 to 150, not {shown(self.steps)}")

    @staticmethod
    def _whole(value: object, low: int, high: int) -> bool:
        """An int (not a bool) from low to high."""
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True)
class AdapterRef:
    """A character's adapter as the pipeline knows it: a unique name, its folder, its weight."""

    name: str
    folder: str
    weight: float


@dataclass(frozen=True)
class RenderJob:
    """Everything one GPU call needs to draw a page's pictures (small, so it pickles)."""

    prompt: str
    negative: str
    seeds: tuple[int, ...]
    width: int
    height: int
    steps: int
    guidance: float
    adapters: tuple[AdapterRef, ...]  # exactly the adapters active on this page


def page_seed(book_seed: int, page_number: int) -> int:
    """The first seed of a page: the same for every run of a book, different for every page."""
    digest = hashlib.sha256(f"taleweaver:{book_seed}:{page_number}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def illustrate_book(settings: Settings, user: str, book_id: str,
                    config: IllustrateConfig = IllustrateConfig(), *, token: Optional[str] = None,
                    on_progress: Optional[ProgressFn] = None) -> Book:
    """Draw every page that has no picture yet, saving the book after each page.

    After a failure at page 7, pages 1 to 6 are kept and calling this again goes on at page 7.
    """
    store = BookStore(settings, user)
    book = store.get(book_id)
    todo = book.missing
    if not todo:
        return book
    style = get_style(book.style)
    cast = CharacterStore(settings, user).list()
    names = {name for number in todo for name in book.page(number).characters}
    adapters = _adapters(settings, user, names, config.adapter_weight, token)
    report = on_progress or (lambda progress: None)
    report(Progress(0, len(todo), "page", "loading the model and the characters' adapters"))
    pipe = load_pipeline(settings)
    started = time.monotonic()
    with _for_the_book(pipe, adapters.values()):
        for done, number in enumerate(todo, start=1):
            page = book.page(number)
            seeds = _seeds(page_seed(book.seed, number), config.candidates)
            book = _draw(settings, store, book_id, number, _prompt(style, page, cast), seeds,
                         style, config, [adapters[name] for name in page.characters])
            per_page = (time.monotonic() - started) / done
            report(Progress(done, len(todo), "page", f"page {number} of {len(book.pages)} done",
                            seconds_left=per_page * (len(todo) - done)))
    return book


def regenerate_page(settings: Settings, user: str, book_id: str, page_number: int,
                    config: IllustrateConfig = IllustrateConfig(), *,
                    seed: Optional[int] = None, token: Optional[str] = None) -> Book:
    """Draw new pictures for one page, with fresh seeds or a chosen one.

    The new pictures join the page's candidates and the first becomes its picture. Without a
    seed the page gets fresh seeds; with one, the same seed and scene redraw the same picture.
    """
    store = BookStore(settings, user)
    book = store.get(book_id)
    page = book.page(page_number)
    first = page_seed(book.seed, page_number) + len(page.candidates) if seed is None \
        else check_seed(seed)
    adapters = _adapters(settings, user, page.characters, config.adapter_weight, token)
    style = get_style(book.style)
    with _for_the_book(load_pipeline(settings), adapters.values()):
        return _draw(settings, store, book_id, page_number,
                     _prompt(style, page, CharacterStore(settings, user).list()),
                     _seeds(first, config.candidates), style, config,
                     [adapters[name] for name in page.characters])


def render_seconds(settings: Settings, job: RenderJob) -> float:
    """The GPU seconds a `render` call asks ZeroGPU for: a bound above SDXL's time on its GPU."""
    megapixels = job.width * job.height / 2**20
    seconds = 10 + 3 * len(job.adapters) + len(job.seeds) * (2 + 0.15 * job.steps * megapixels)
    return min(float(ZEROGPU_CALL_SECONDS), seconds)


@gpu(duration=render_seconds)
def render(settings: Settings, job: RenderJob) -> list[Image.Image]:
    """Draw one picture per seed with exactly the job's adapters active (one ZeroGPU call).

    Adapters the pipeline doesn't hold yet are loaded for this call and removed after it.
    """
    import torch

    pipe = load_pipeline(settings)
    with adapters_loaded(pipe, job.adapters), pipeline_lock():
        activate(pipe, job.adapters)
        embeds = encode_long_prompt(pipe, job.prompt, job.negative)
        return [pipe(**embeds, width=job.width, height=job.height,
                     num_inference_steps=job.steps, guidance_scale=job.guidance,
                     generator=torch.Generator("cpu").manual_seed(seed)).images[0]
                for seed in job.seeds]


def activate(pipe, adapters: Sequence[AdapterRef]) -> None:
    """Make exactly these loaded adapters active, at their weights; none turns LoRA off."""
    if adapters:
        pipe.enable_lora()
        pipe.set_adapters([a.name for a in adapters], adapter_weights=[a.weight for a in adapters])
    else:
        pipe.disable_lora()


@contextlib.contextmanager
def adapters_loaded(pipe, adapters: Iterable[AdapterRef]) -> Iterator[None]:
    """Hold these adapters in the pipeline for the block, loading those it lacks.

    Books running side by side (two users of the app) share the loaded adapters they have in
    common; an adapter goes when the last block using it ends, and when none is left the LoRA
    layers go too, so the pipeline is exactly as loaded and no adapter leaks into a later
    picture. Adapters loaded by other code are left alone.
    """
    held = []
    try:
        with pipeline_lock():
            present = {name for names in pipe.get_list_adapters().values() for name in names}
            for adapter in {a.name: a for a in adapters}.values():
                key = (id(pipe), adapter.name)
                if key not in _holders:
                    if adapter.name in present:
                        continue
                    pipe.load_lora_weights(adapter.folder, weight_name=ADAPTER_WEIGHTS,
                                           adapter_name=adapter.name)
                    _holders[key] = 0
                _holders[key] += 1
                held.append(key)
        yield
    finally:
        with pipeline_lock():
            done = []
            for key in held:
                _holders[key] -= 1
                if not _holders[key]:
                    del _holders[key]
                    done.append(key[1])
            if done:
                pipe.enable_lora()
                pipe.delete_adapters(done)
                if not any(pipe.get_list_adapters().values()):
                    pipe.unload_lora_weights()
                    for component in pipe.components.values():  # unloading leaves this behind
                        getattr(component, "__dict__", {}).pop("_hf_peft_config_loaded", None)


def _for_the_book(pipe, adapters: Iterable[AdapterRef]):
    """Adapters held for a whole book in this process; none on ZeroGPU, where each `render`
    call loads its page's adapters in its own worker."""
    return contextlib.nullcontext() if on_zerogpu() else adapters_loaded(pipe, adapters)


def encode_long_prompt(pipe, prompt: str, negative: str) -> dict:
    """SDXL prompt embeddings without CLIP's 77-token cut: the text is encoded in 75-token
    windows and joined, so a long page can't push the style's words out of the prompt.

    A prompt that fits one window gives exactly what `pipe.encode_prompt` gives.
    """
    import torch

    encoders = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    ids = {(text, i): tokenizer(text, add_special_tokens=False, verbose=False).input_ids
           for text in (prompt, negative) for i, (tokenizer, _) in enumerate(encoders)}
    window = min(tokenizer.model_max_length for tokenizer, _ in encoders) - 2
    windows = max(1, *(math.ceil(len(v) / window) for v in ids.values()))
    result = {}
    with torch.no_grad():
        for text, key in ((prompt, ""), (negative, "negative_")):
            hidden, pooled = [], None
            for i, (tokenizer, encoder) in enumerate(encoders):
                tokens = ids[(text, i)]
                states = []
                for start in range(0, windows * window, window):
                    piece = tokens[start:start + window]
                    row = [tokenizer.bos_token_id, *piece, tokenizer.eos_token_id]
                    row += [tokenizer.pad_token_id] * (window + 2 - len(row))
                    output = encoder(torch.tensor([row], device=encoder.device),
                                     output_hidden_states=True)
                    states.append(output.hidden_states[-2])
                    if pooled is None and output[0].ndim == 2:
                        pooled = output[0]  # the last encoder's projection, first window
                hidden.append(torch.cat(states, dim=1))
            result[f"{key}prompt_embeds"] = torch.cat(hidden, dim=-1)
            result[f"{key}pooled_prompt_embeds"] = pooled
    return result


def _prompt(style: Style, page: Page, cast: Sequence[Character]) -> str:
    """The page's full prompt: its scene with the characters' trigger words, in the style."""
    return style.prompt(scene_prompt(page.scene, cast))


def _draw(settings: Settings, store: BookStore, book_id: str, number: int, prompt: str,
          seeds: tuple[int, ...], style: Style, config: IllustrateConfig,
          adapters: Sequence[AdapterRef]) -> Book:
    """Render one page's pictures and record them; the first becomes the page's picture."""
    job = RenderJob(prompt=prompt, negative=style.negative, seeds=seeds,
                    width=config.width or style.width, height=config.height or style.height,
                    steps=config.steps or style.steps, guidance=style.guidance,
                    adapters=tuple(adapters))
    saved = [store.add_illustration(book_id, number, image, seed=seed, prompt=job.prompt,
                                    choose=index == 0)
             for index, (seed, image) in enumerate(zip(seeds, render(settings, job)))]
    return saved[-1]


def _adapters(settings: Settings, user: str, names: Iterable[str], weight: float,
              token: Optional[str]) -> dict[str, AdapterRef]:
    """Each named character's adapter (fetched from the user's Hub repo if it isn't local).

    Names carry the weights file's timestamp, so a retrained adapter is never mistaken for
    the one the pipeline may still hold.
    """
    store = CharacterStore(settings, user)
    refs = {}
    for name in sorted(set(names)):
        character: Character = store.get(name)
        folder = ensure_local_adapter(settings, user, character, token)
        stamp = (folder / ADAPTER_WEIGHTS).stat().st_mtime_ns
        tag = hashlib.sha256(f"{folder}:{stamp}".encode()).hexdigest()[:8]
        refs[name] = AdapterRef(f"tw_{character.slug.replace('-', '_')}_{tag}", str(folder),
                                weight)
    return refs


def _seeds(first: int, count: int) -> tuple[int, ...]:
    return tuple((first + i) % (MAX_SEED + 1) for i in range(count))


def check_seed(seed: int) -> int:
    """A seed as pictures take it: a whole number from 0 to MAX_SEED."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise IllustrateError(f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return seed
