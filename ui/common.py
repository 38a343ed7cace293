"""What every tab shares: our errors as gr.Error, progress bars, pictures and download files.

Files reach the browser only through gradio's cache, whose folder names are hashes of the
content: a handler returns PIL images, or files written to a private scratch folder, never a
path inside the data folder (which is not in `allowed_paths`), so nobody can fetch another
user's pictures or books by guessing a URL.
"""
import contextlib
import functools
import html
import inspect
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from pipeline.progress import Progress, ProgressFn, counted

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)
SCRATCH = Path(tempfile.gettempdir()) / "taleweaver-downloads"
SCRATCH_MAX_AGE_S = 3600  # gradio has copied a download into its cache long before this
GPU = dict(concurrency_id="gpu", concurrency_limit=1)  # one GPU job at a time, app-wide
PRIVATE = dict(api_visibility="private")
ERROR_SECONDS = 30  # long enough to read a verdict on every photo
STATUS_HEIGHT = 56  # px: an empty result line this tall shows the progress bar of its event


def user_errors(fn: F) -> F:
    """Turn the engine's errors (ValueError, RuntimeError) into gr.Error with their message,
    HTML-escaped: gradio renders an error as HTML, and messages quote free text (titles).
    A generator function (a handler that shows something before it fails) stays one."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            with as_messages():
                yield from fn(*args, **kwargs)

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with as_messages():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def as_messages() -> Iterator[None]:
    """The engine's errors raised in the block, as gr.Error (see `user_errors`)."""
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, RuntimeError) as err:
        raise gr.Error(html.escape(str(err), quote=False), duration=ERROR_SECONDS,
                       print_exception=False) from None


def public(fn: Callable, api_name: str, **fill: str) -> dict:
    """An event's (or gr.api's) API name and its description on the API page: the docstring's
    summary, then one line per entry of its Args (gradio itself shows only the summary).
    `fill` gives the values of {placeholders} in the docstring (this server's limits)."""
    description = _api_doc(fn)
    for key, value in fill.items():
        description = description.replace("{" + key + "}", value)
    return {"api_name": api_name, "api_description": description}


def _api_doc(fn: Callable) -> str:
    """The docstring's summary on one line, then "• name: what it is" for each Args entry
    (continuation lines joined)."""
    lines = (inspect.getdoc(fn) or "").splitlines()
    cut = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
    summary = " ".join(line.strip() for line in lines[:cut] if line.strip())
    entries: list[str] = []
    for line in lines[cut + 1:]:
        if not line.strip():
            continue
        if line.startswith(" " * 8) and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append("• " + line.strip())
    return "\n".join([summary, *entries])


def own_choice(label: str, example: str, **kwargs) -> gr.Dropdown:
    """A dropdown of the user's own characters or books: built empty (each session fills it)
    and open to any value (the engine checks it). The API page types it as text, with
    `example`, rather than as a choice among none (gradio asks the instance; a subclass of a
    component would make gradio write a .pyi file next to this module)."""
    box = gr.Dropdown([], label=label, allow_custom_value=True, **kwargs)
    text = {"type": "string"}
    box.api_info = lambda: {"type": "array", "items": text} if box.multiselect else text
    box.example_payload = box.example_value = lambda: [example] if box.multiselect else example
    return box


def confirmation(yes: str) -> tuple[gr.Row, gr.Markdown, gr.Button, gr.Button]:
    """A hidden row asking a question before something that can't be undone: (row, question,
    yes button, cancel button). Show the row with the question; "yes" does it."""
    with gr.Row(visible=False, equal_height=True, elem_classes="tw-notice") as row:
        with gr.Column(scale=4):
            question = gr.Markdown()
        yes_button = gr.Button(yes, variant="stop", scale=1, min_width=160)
        cancel = gr.Button("Cancel", scale=0, min_width=100)
    return row, question, yes_button, cancel


def progress_bar(progress: gr.Progress) -> ProgressFn:
    """A ProgressFn moving a gr.Progress bar: "step 120/400 · loss 0.081 · about 2 min left"."""
    def show(update: Progress) -> None:
        if update.total:
            progress((update.done, update.total), desc=update.describe(), unit=update.unit)
        else:
            progress(None, desc=update.describe())

    return show


def picture(path: Optional[Path]) -> Optional[Image.Image]:
    """A picture from the user's folder, loaded (gradio serves a cached copy, not the file)."""
    if path is None or not path.is_file():
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def scratch_folder() -> Path:
    """A fresh private folder for a download (a book's PDF); ones older than an hour go."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - SCRATCH_MAX_AGE_S
    for old in SCRATCH.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:
            continue
    return Path(tempfile.mkdtemp(dir=SCRATCH))


def forget_uploads(paths: Iterable[str]) -> None:
    """Delete uploaded files from gradio's upload cache now, rather than at its hourly sweep
    (the engine keeps what it needs: crops, and the originals only when asked). A path outside
    the cache, or a link out of it, is never touched."""
    cache = Path(get_upload_folder()).resolve()
    for path in paths:
        upload = Path(path).resolve()
        if upload == cache or not upload.is_relative_to(cache) or not upload.is_file():
            continue
        try:
            upload.unlink()
        except OSError as err:
            log.warning("could not remove the upload %s: %s", upload, err)


def choices(pairs: list[tuple[str, str]], value: Optional[str], first: bool = True) -> dict:
    """A dropdown update keeping the current value while it is still a choice; otherwise the
    first choice (or nothing, with first=False)."""
    values = [v for _, v in pairs]
    if value not in values:
        value = values[0] if values and first else None
    return gr.update(choices=pairs, value=value)


def book_choices(rows: Iterable) -> list[tuple[str, str]]:
    """(label, id) of books listed by `actions.books.list_books`, for a dropdown."""
    return [(f"{row.title} ({counted(row.pages, 'page')}, {row.created[:10]})", row.id)
            for row in rows]


def escape_md(text: str) -> str:
    """Free text (a name, a title) shown literally inside gr.Markdown."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", text)
