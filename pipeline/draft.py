"""Drafting a story with a small instruct language model: premise and characters in, pages out.

The model (TALEWEAVER_STORY_MODEL, by default Qwen/Qwen2.5-1.5B-Instruct) is asked for JSON,
`{"pages": [{"text": ..., "scene": ...}]}`. Small models stray: code fences, chatter around
the JSON, trailing commas, an answer cut off mid-page, too many or too few pages. What can be
repaired is, with a warning; an answer with no usable page is a DraftError, never a crash.
The draft is a starting point: `Draft.story_text()` is an editable story in the story format.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from huggingface_hub import constants, try_to_load_from_cache

from .characters import Character
from .hardware import ZEROGPU_CALL_SECONDS, Hardware, detect, gpu
from .models import ModelUnavailableError
from .progress import Progress, ProgressFn, counted
from .settings import Settings
from .story import SCENE_LABEL, page_line

MAX_NEW_TOKENS = 4096  # about 30 pages; fits one ZeroGPU call
TOKENS_PER_PAGE = 120
MAX_PREMISE_CHARS = 1000
SYSTEM_PROMPT = ("You write short, warm picture-book stories for children aged 2 to 8. "
                 "Whatever the premise says, every page stays gentle and suitable for them: "
                 "no violence, nothing frightening, cruel or grown-up. "
                 "You answer with JSON only.")
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")

_cache: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_failed: dict[str, str] = {}  # story model -> why it couldn't be loaded in this process
_lock = threading.Lock()


class DraftError(ValueError):
    """The request can't be drafted, or the model's answer held no usable page."""


@dataclass(frozen=True)
class DraftPage:
    """One drafted page: its story text and a one-line description of its picture."""

    text: str
    scene: str


@dataclass(frozen=True)
class Draft:
    """A drafted story, with what was repaired in the model's answer."""

    pages: tuple[DraftPage, ...]
    warnings: tuple[str, ...] = ()

    def story_text(self) -> str:
        """The draft in the story format: pages apart by blank lines, each with a Scene line."""
        label = SCENE_LABEL.capitalize()
        return "\n\n".join(f"{page.text}\n{label} {page.scene}" for page in self.pages) + "\n"

    def to_json(self) -> dict:
        """The pages, the warnings and the whole story in the story format ("story")."""
        return {**asdict(self), "story": self.story_text()}


def draft_story(settings: Settings, premise: str, characters: Sequence[Character], pages: int,
                *, seed: int = 0, on_progress: Optional[ProgressFn] = None) -> Draft:
    """Ask the story model for a story of `pages` pages about these characters.

    The same seed, premise and characters give the same draft on the same machine.
    """
    premise = " ".join(premise.split())
    if not premise:
        raise DraftError("the premise is empty: say in a sentence what the story is about")
    if len(premise) > MAX_PREMISE_CHARS:
        raise DraftError(f"the premise has {len(premise)} characters; the limit is "
                         f"{MAX_PREMISE_CHARS}")
    if not 1 <= pages <= settings.max_pages:
        raise DraftError(f"pages must be from 1 to {settings.max_pages} "
                         f"(TALEWEAVER_MAX_PAGES), not {pages}")
    report = on_progress or (lambda progress: None)
    report(Progress(0, 1, "draft", "loading the story model"))
    load_story_model(settings)
    report(Progress(0, 1, "draft", "writing"))
    answer = generate(settings, story_messages(premise, characters, pages),
                      min(MAX_NEW_TOKENS, 64 + TOKENS_PER_PAGE * pages), seed)
    draft = parse_draft(answer, pages, settings)
    report(Progress(1, 1, "draft", counted(len(draft.pages), "page")))
    return draft


def story_messages(premise: str, characters: Sequence[Character], pages: int) -> list[dict]:
    """The chat the story model answers: the premise, who is in it, and the JSON form."""
    cast = "\n".join(f"- {c.name}, a {c.kind}" + (f" ({c.description})" if c.description else "")
                     for c in characters) or "- (no named characters)"
    request = (
        f"Write a picture-book story in exactly {counted(pages, 'page')}.\n"
        f"Premise: {premise}\n"
        f"Characters (use these exact names):\n{cast}\n"
        "Each page has one to three short sentences of story text, and a scene: one sentence "
        "describing that page's picture (who is in it, what they do, where), naming the "
        "characters.\n"
        'Answer with JSON only, in this form: {"pages": [{"text": "...", "scene": "..."}]}')
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": request}]


def parse_draft(answer: str, pages: int, settings: Settings) -> Draft:
    """The pages in a model's answer, repaired where possible; DraftError if there are none."""
    records = _page_records(_TRAILING_COMMA.sub(r"\1", _FENCE.sub("", answer)))
    found = []
    for record in records:  # each value as one line that parse_story reads back the same
        text, scene = (page_line(value) if isinstance(value, str) else ""
                       for value in (record.get("text"), record.get("scene")))
        if text:
            found.append(DraftPage(text=text, scene=scene or text))
    if not found:
        start = " ".join(answer.split())[:80]
        raise DraftError("the story model's answer held no page in the expected JSON form "
                         f"(it began: {start!r}); try again, or with another seed")
    warnings = []
    if len(found) > pages:
        kept = "the first page was" if pages == 1 else f"the first {pages} were"
        warnings.append(f"the model wrote {len(found)} pages; {kept} kept")
        found = found[:pages]
    elif len(found) < pages:
        warnings.append(f"the model wrote {len(found)} of the {pages} pages asked for")
    for number, page in enumerate(found, start=1):
        if len(page.text) > settings.max_page_chars:
            warnings.append(f"page {number} has {len(page.text)} characters, past the limit of "
                            f"{settings.max_page_chars}: shorten it before illustrating")
    return Draft(pages=tuple(found), warnings=tuple(warnings))


def load_story_model(settings: Settings):
    """(tokenizer, model) for TALEWEAVER_STORY_MODEL, loaded once per process; a failure is
    remembered for `story_model_problem`."""
    hardware = detect(settings)
    key = (settings.story_model, hardware.device, hardware.dtype)
    with _lock:
        if key not in _cache:
            try:
                _cache[key] = _load(settings.story_model, hardware)
            except ModelUnavailableError as err:
                _failed[settings.story_model] = str(err)
                raise
            _failed.pop(settings.story_model, None)
        return _cache[key]


def story_model_problem(settings: Settings) -> str:
    """Why drafting can't work on this server, for its operator ("" when it can, or may: the
    story model is a local folder or in the Hugging Face cache, or the Hub can be reached).
    Cheap: nothing is loaded. A load that failed in this process is remembered."""
    source = settings.story_model
    if source in _failed:
        return _failed[source]
    local = Path(source).expanduser()
    if source.startswith((".", "/", "~")) or local.exists():
        if (local / "config.json").is_file():
            return ""
        return f"TALEWEAVER_STORY_MODEL={source}: no model folder there"
    try:
        cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    except ValueError as err:  # not a valid Hub id
        return f"TALEWEAVER_STORY_MODEL={source} is not a Hub model id ({err})"
    if cached or not constants.is_offline_mode():
        return ""
    return (f"TALEWEAVER_STORY_MODEL={source} is not in the Hugging Face cache and the Hub is "
            "switched off here (HF_HUB_OFFLINE=1): download it once while online")


def _generate_seconds(settings: Settings, messages: list[dict], max_new_tokens: int,
                      seed: int) -> float:
    return min(float(ZEROGPU_CALL_SECONDS), 15 + max_new_tokens / 40)


@gpu(duration=_generate_seconds)
def generate(settings: Settings, messages: list[dict], max_new_tokens: int, seed: int) -> str:
    """The story model's answer to a chat, sampled with a fixed seed (one ZeroGPU call)."""
    import torch

    tokenizer, model = load_story_model(settings)
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True).to(model.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=True,
                                temperature=0.8, top_p=0.9,
                                pad_token_id=tokenizer.eos_token_id if tokenizer.pad_token_id
                                is None else tokenizer.pad_token_id)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _load(source: str, hardware: Hardware):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=hardware.torch_dtype)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(
            f"TALEWEAVER_STORY_MODEL={source} could not be loaded: it is neither a local folder "
            "nor in the Hugging Face cache, and the Hub is not reachable (offline, or "
            "HF_HUB_OFFLINE=1). Download it once while online, or set TALEWEAVER_STORY_MODEL "
            f"to a local folder. ({err})") from err
    if not tokenizer.chat_template:
        raise ModelUnavailableError(f"TALEWEAVER_STORY_MODEL={source} has no chat template: "
                                    "use an instruct (chat) model")
    return tokenizer, model.to(hardware.device).eval()


def _page_records(text: str) -> list[dict]:
    """Every page object in the text: a whole JSON answer if one parses, else each complete
    page object on its own (an answer cut off mid-way keeps the pages before the cut)."""
    decoder = json.JSONDecoder(strict=False)  # a raw newline inside a string is fine
    records, index = [], 0
    while index < len(text):
        if text[index] in "[{":
            try:
                value, end = decoder.raw_decode(text, index)
            except (json.JSONDecodeError, RecursionError):  # broken, or nested past Python's limit
                index += 1
                continue
            pages = _pages_in(value)
            if pages:
                records.extend(pages)
                index = end
                continue
        index += 1
    return records


def _pages_in(value: Any) -> list[dict]:
    """The page objects in a decoded JSON value: a page ({"text": ...}), a list of them or an
    object whose "pages" holds them, nested any way and deep (a stack, not recursion)."""
    pages, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            item = {str(k).lower(): v for k, v in item.items()}
            if "text" in item:
                pages.append(item)
            else:
                stack.append(item.get("pages"))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return pages
