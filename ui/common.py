"""What every tab shares: our errors as gr.Error, progress bars, pictures and download files.

Files reach the browser only through gradio's cache, whose folder names are hashes of the
content: a handler returns PIL images, or files written to a private scratch folder, never a
path inside the data folder (which is not in `allowed_paths`), so nobody can fetch another
user's pictures or books by guessing a URL.
"""
import contextlib
import errno
import functools
import html
import inspect
import logging
import math
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import gradio as gr
from gradio.context import LocalContext
from gradio.utils import get_upload_folder
from PIL import Image

from pipeline.actions.system import ModelUnavailableError, shown
from pipeline.progress import Cancelled, Progress, ProgressFn, counted

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)
ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path(tempfile.gettempdir()) / "taleweaver-downloads"
SCRATCH_MAX_AGE_S = 3600  # gradio has copied a download into its cache long before this
# GPU events: this many run at once, each waiting for its turns on the GPU (pipeline/turns.py),
# which serves users round robin a page or a training chunk at a time; more wait in gradio's
# queue. Listings never join them (LIGHT: any number at once).
GPU = dict(concurrency_id="gpu", concurrency_limit=8)
LIGHT = dict(concurrency_limit=None)
PRIVATE = dict(api_visibility="private")
ERROR_SECONDS = 30  # long enough to read a verdict on every photo
STATUS_HEIGHT = 56  # px: an empty result line this tall shows the progress bar of its event
DISK_FULL = "the server's disk is full: nothing was saved. Try again later."
NO_MODEL = ("a model this app needs isn't available on this server right now; whoever runs it "
            "finds why in its log")
CANCELLED = "cancelled: what was done before is kept"


def user_errors(fn: F) -> F:
    """Turn every failure into gr.Error with a message for the caller, HTML-escaped (gradio
    renders an error as HTML, and messages quote free text such as titles).

    The engine's own errors keep their message. A cancelled job, a full disk or a missing
    model get one of ours; anything else (a library's error, whose text may hold server paths,
    settings or other users' names) is logged with a reference and the caller gets only that
    reference: never gradio's generic error, never a server detail. A generator function (a
    handler that shows something before it fails) stays one.
    """
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
    except Exception as err:  # noqa: BLE001 - every failure gets a message
        raise gr.Error(html.escape(caller_message(err), quote=False),
                       duration=ERROR_SECONDS, print_exception=False) from None


def caller_message(err: Exception) -> str:
    """What a caller is told about a failure (the details of any other go to the log)."""
    if isinstance(err, Cancelled):
        return f"{CANCELLED} ({err})" if str(err) else CANCELLED
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("disk full: %s", err)
        return DISK_FULL
    if isinstance(err, ModelUnavailableError):
        log.error("model unavailable: %s", err)
        return NO_MODEL
    if isinstance(err, (ValueError, RuntimeError)) and _raised_here(err):
        return str(err)
    reference = secrets.token_hex(4)
    log.error("unexpected error %s", reference, exc_info=err)
    return (f"something went wrong on the server (reference {reference}). Try again; if it "
            "happens again, tell whoever runs this app this reference.")


def _raised_here(err: BaseException) -> bool:
    """Whether the error was raised by this project's code (not inside a library, whose
    messages are not written for callers)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    return path.is_relative_to(ROOT) and "site-packages" not in path.parts


def event_cancelled(closed_tab: bool = True) -> bool:
    """Whether the gradio event this thread works for was cancelled: gradio's cancel or the
    API's job.cancel() (gradio cancels the event's task, which forgets the event, but can't
    stop its thread), or, with `closed_tab`, a closed tab (gradio marks the event dead and
    lets its task run on). False outside an event."""
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    if queue is None or event_id is None:
        return False
    event = getattr(queue, "event_ids_to_events", {}).get(event_id)
    return event is None or (closed_tab and not getattr(event, "alive", True))


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


def progress_bar(progress: gr.Progress, *, outlives_the_tab: bool = False) -> ProgressFn:
    """A ProgressFn moving a gr.Progress bar: "step 120/400 · loss 0.081 · about 2 min left".
    It raises Cancelled once the event is cancelled, so the work stops at its next report.
    Work that `outlives_the_tab` (training, a whole book: recorded in the user's work, which
    any tab shows with its own Cancel) goes on when the tab is closed, so that the parent
    finds it on coming back; gradio's cancel and the API's still stop it."""
    def show(update: Progress) -> None:
        if event_cancelled(closed_tab=not outlives_the_tab):
            raise Cancelled()
        if update.total:
            progress((update.done, update.total), desc=update.describe(), unit=update.unit)
        else:
            progress(None, desc=update.describe())

    return show


def picture(path: Optional[Path]) -> Optional[Image.Image]:
    """A picture from the user's folder, loaded (gradio serves a cached copy, not the file);
    None when there is none, or it is damaged (logged: the page shows without it)."""
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:
        log.warning("damaged picture %s: %s", path, err)
        return None


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


def choices(pairs: list[tuple[str, str]], value: Optional[str], first: bool = True, *,
            default: Optional[str] = None) -> dict:
    """A dropdown update keeping the current value while it is still a choice; otherwise
    `default` where it is one, else the first choice (or nothing, with first=False). A value
    still offered is not sent back: the page keeps what it shows by then, which another event
    (the Train tab's resume on opening) may have changed since this one read it."""
    values = [v for _, v in pairs]
    if value in values:
        return gr.update(choices=pairs)
    if default not in values:
        default = values[0] if values and first else None
    return gr.update(choices=pairs, value=default)


def book_choices(rows: Iterable) -> list[tuple[str, str]]:
    """(label, id) of books listed by `actions.books.list_books`, for a dropdown."""
    return [(f"{row.title} ({counted(row.pages, 'page')}, {row.created[:10]})", row.id)
            for row in rows]


def escape_md(text: str) -> str:
    """Free text (a name, a title) shown literally inside gr.Markdown."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", text)


# What each kind of input accepts from a caller before gradio converts it (None: left empty).
_ACCEPTS = ((gr.Checkbox, (bool,), "true or false"), (gr.Number, (int, float), "a number"),
            (gr.Slider, (int, float), "a number"), (gr.Textbox, (str,), "text"),
            (gr.Radio, (str,), "one of its choices"))


def named_input_errors(demo: gr.Blocks) -> None:
    """Make every event's inputs refuse a wrong-typed value (a string for a number, a list
    for a name, a number for a book id, NaN or infinity) with gr.Error naming the API
    parameter, before gradio's own conversion fails with its generic error or quietly turns
    a list into text. An input is named as the API names it (a public event's parameter) where
    one does, else by the first event that takes it."""
    names: dict[int, str] = {}
    public_first = sorted(demo.fns.values(), key=lambda f: f.api_visibility != "public")
    for block_fn in public_first:
        if block_fn.fn is None:
            continue
        params = [p.name for p in inspect.signature(block_fn.fn).parameters.values()]
        for block, name in zip(block_fn.inputs, params):
            names.setdefault(block._id, name)
    for block_fn in demo.fns.values():
        for block in block_fn.inputs:
            if not getattr(block, "_named_errors", False):
                _name_errors(block, names.get(block._id) or getattr(block, "label", "") or "input")


def _name_errors(block, field: str) -> None:
    """Wrap one input's preprocess so that its failures name `field`."""
    original = block.preprocess
    accepts = next(((types, what) for kind, types, what in _ACCEPTS if isinstance(block, kind)),
                   None)

    def preprocess(payload):
        if accepts is not None and payload is not None:
            types, what = accepts
            bad = (not isinstance(payload, types) or isinstance(payload, bool) != (bool in types)
                   or (isinstance(payload, float) and not math.isfinite(payload)))
            if bad:
                raise gr.Error(f"{field}: expected {what}, got {shown(payload)}",
                               print_exception=False)
        try:
            return original(payload)
        except gr.Error as err:
            raise gr.Error(f"{field}: {err.message}", print_exception=False) from None
        except Exception:  # noqa: BLE001 - gradio's conversion of a value it can't take
            raise gr.Error(f"{field}: {shown(payload)} is not a valid value",
                           print_exception=False) from None

    block.preprocess = preprocess
    block._named_errors = True
