"""Child safety: every picture through an image safety classifier, and the words of stories,
scenes and looks through a list of plainly unsafe words, before anything is drawn.

Pictures: `check_pictures` runs TALEWEAVER_SAFETY_MODEL (a transformers image-classification
model, by default Falconsai/nsfw_image_detection) on each; a picture whose unsafe labels
(UNSAFE_LABELS) reach THRESHOLD is flagged. `draw_safely` is the loop illustration uses: draw,
check, redraw each flagged picture with another seed (`safety_seed`), and after SAFETY_TRIES
give up on it (None), so the page can say it could not be drawn safely. The negative prompt is
no safeguard on its own; this check is.

Words: assets/unsafe_words.txt (its header says what is on it, what is deliberately not, and
how entries match). `screen_text` raises UnsafeText naming where the word is and the word.
"""
from __future__ import annotations

import functools
import hashlib
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from PIL import Image

from .hardware import detect
from .models import ModelUnavailableError
from .settings import Settings

WORDS = Path(__file__).resolve().parent.parent / "assets" / "unsafe_words.txt"
UNSPACED = ("zh", "ja", "ko", "th")  # scripts without spaces: an entry matches anywhere
UNSAFE_LABELS = frozenset({"nsfw", "porn", "hentai", "sexy", "explicit", "nudity", "unsafe",
                           "gore", "violence"})
THRESHOLD = 0.5  # a picture is flagged when its unsafe labels' probability reaches this
SAFETY_TRIES = 3  # draws of one picture (the first and two redraws) before giving up

_models: dict[tuple[str, str], tuple[Any, Any]] = {}
_lock = threading.Lock()  # loading and running the classifier


class UnsafeText(ValueError):
    """Text with a word from assets/unsafe_words.txt; the message names where and the word."""


@dataclass(frozen=True)
class Verdict:
    """The classifier on one picture: flagged or not, its top label and that label's score."""

    flagged: bool
    label: str
    score: float


@dataclass(frozen=True)
class Drawn:
    """One picture drawn safely: `image` is what `draw` returned for it (a PIL image, or e.g.
    render's Rendered), None after SAFETY_TRIES flagged draws; `seed` is the seed that drew it
    (or the last one tried), which redraws it exactly, and `tries` how many draws it took."""

    seed: int
    image: Optional[Any]
    tries: int


def screen_text(text: str, where: str) -> None:
    """Raise UnsafeText if `text` holds a listed word; `where` names it ("page 3's scene")."""
    word = unsafe_word(text)
    if word is not None:
        raise UnsafeText(f"{where} has the word {word!r}, which this app does not put in a "
                         "children's picture book; change it and try again")


def unsafe_word(text: str) -> Optional[str]:
    """The first listed word in `text` (as written there, unless normalising changed the
    text's length), or None."""
    normal = _normal(text)
    match = _pattern().search(normal)
    if match is None:
        return None
    return text[match.start():match.end()] if len(normal) == len(text) else match.group(0)


@functools.lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    """One regex of every entry: whole words in spaced scripts (with * any ending), anywhere
    in the unspaced ones."""
    spaced, unspaced, language = [], [], ""
    for raw in WORDS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            language = line[1:line.index("]")]
            continue
        entry = _normal(line)
        stem = r"\s+".join(re.escape(part) for part in entry.rstrip("*").split())
        if language in UNSPACED:
            unspaced.append(stem)
        else:
            ending = r"\w*" if entry.endswith("*") else ""
            spaced.append(rf"(?<!\w){stem}{ending}(?!\w)")
    return re.compile("|".join(spaced + unspaced) or "(?!)")


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def check_pictures(settings: Settings, images: Sequence[Image.Image]) -> list[Verdict]:
    """The classifier's verdict on each picture, in order."""
    if not images:
        return []
    import torch

    processor, model = load_safety_model(settings)
    with _lock, torch.no_grad():
        inputs = processor(images=[image.convert("RGB") for image in images],
                           return_tensors="pt").to(model.device)
        probabilities = model(**inputs).logits.float().softmax(dim=-1).cpu()
    labels = {index: str(label).lower() for index, label in model.config.id2label.items()}
    unsafe = [index for index, label in labels.items() if label in UNSAFE_LABELS]
    verdicts = []
    for row in probabilities:
        top = int(row.argmax())
        verdicts.append(Verdict(flagged=float(row[unsafe].sum()) >= THRESHOLD,
                                label=labels[top], score=round(float(row[top]), 4)))
    return verdicts


def draw_safely(settings: Settings, draw: Callable[[Sequence[int]], Sequence[Any]],
                seeds: Sequence[int], tries: int = SAFETY_TRIES, *,
                image: Callable[[Any], Image.Image] = lambda drawn: drawn) -> list[Drawn]:
    """Draw one picture per seed with `draw(seeds)` (one result per seed; `image` gives its
    PIL image), check them, and redraw the flagged ones with `safety_seed(seed, attempt)`
    until they pass or `tries` draws were flagged. One Drawn per seed, in order."""
    results: list[Optional[Drawn]] = [None] * len(seeds)
    pending = list(range(len(seeds)))
    for attempt in range(tries):
        now = [safety_seed(seeds[i], attempt) for i in pending]
        items = list(draw(now))
        verdicts = check_pictures(settings, [image(item) for item in items])
        still = []
        for index, seed, item, verdict in zip(pending, now, items, verdicts):
            if verdict.flagged:
                still.append(index)
                results[index] = Drawn(seed, None, attempt + 1)
            else:
                results[index] = Drawn(seed, item, attempt + 1)
        pending = still
        if not pending:
            break
    return [result for result in results if result is not None]


def safety_seed(seed: int, attempt: int) -> int:
    """The seed of a picture's redraw number `attempt` (0: the seed itself); never another
    candidate's seed of the page (those are seed+1, seed+2, ...)."""
    if attempt == 0:
        return seed
    digest = hashlib.sha256(f"taleweaver-safety:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def load_safety_model(settings: Settings) -> tuple[Any, Any]:
    """(image processor, classifier) for TALEWEAVER_SAFETY_MODEL, loaded once per process, on
    the GPU where there is one in this process (on the CPU on ZeroGPU)."""
    hardware = detect(settings)
    device = hardware.device if hardware.kind == "cuda" else "cpu"
    key = (settings.safety_model, device)
    with _lock:
        if key not in _models:
            _models[key] = _load(settings.safety_model, device)
        return _models[key]


def _load(source: str, device: str) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    local = Path(source).expanduser()
    where = str(local) if local.is_dir() else source
    try:
        processor = AutoImageProcessor.from_pretrained(where)
        model = AutoModelForImageClassification.from_pretrained(where)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(
            f"TALEWEAVER_SAFETY_MODEL={source} could not be loaded: it is neither a local folder "
            "nor in the Hugging Face cache, and the Hub is not reachable (offline, or "
            f"HF_HUB_OFFLINE=1). Download it once while online, or set TALEWEAVER_SAFETY_MODEL "
            f"to a local folder. ({err})") from err
    labels = {str(label).lower() for label in model.config.id2label.values()}
    if not labels & UNSAFE_LABELS:
        raise ModelUnavailableError(
            f"TALEWEAVER_SAFETY_MODEL={source} has no unsafe label (its labels: "
            f"{', '.join(sorted(labels))}; expected one of {', '.join(sorted(UNSAFE_LABELS))})")
    return processor, model.to(device).eval()
