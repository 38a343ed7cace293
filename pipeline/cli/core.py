"""What every subcommand shares: the Result it returns, the global options, progress bars."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..progress import Cancelled
from ..settings import Settings


@dataclass
class Result:
    """What a subcommand produced: `data` for --json, `text` for a terminal, and `ok`: whether
    it did what was asked (False exits with 1; the text then goes to stderr)."""

    data: Any
    text: str
    ok: bool = True


Handler = Callable[[argparse.Namespace, Settings], Result]


def common_options(suppress: bool) -> argparse.ArgumentParser:
    """--data-dir, --user, --json and --verbose, accepted before or after the subcommand."""
    default = argparse.SUPPRESS if suppress else None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data-dir", type=Path, default=default,
                        help="where characters and books live (default: TALEWEAVER_DATA_DIR or ./data)")
    parser.add_argument("--user", default=default,
                        help="whose data to use (default: TALEWEAVER_LOCAL_USER, 'local')")
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="print machine-readable JSON instead of text")
    parser.add_argument("--verbose", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="also show the libraries' own warnings and loading bars")
    return parser


def command(sub, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help,
                            parents=[common_options(suppress=True)])
    parser.set_defaults(handler=handler)
    return parser


# What the libraries print for their developers (torchvision notices, "No LoRA keys associated
# to CLIPTextModel...", loading bars): read from the environment when they are imported.
LIBRARY_QUIET = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error",
                 "TQDM_DISABLE": "1"}
LIBRARIES = (r"(torch|torchvision|diffusers|transformers|peft|accelerate|bitsandbytes"
             r"|huggingface_hub)")


@contextlib.contextmanager
def quiet_libraries(verbose: bool) -> Iterator[None]:
    """Keep the libraries' warnings and bars meant for developers off the terminal (our own
    progress bar and messages stay); `--verbose` shows them. Set before they are imported:
    the commands import them lazily. The environment and filters are restored afterwards."""
    if verbose:
        yield
        return
    saved = {key: os.environ.get(key) for key in LIBRARY_QUIET}
    bnb = logging.getLogger("bitsandbytes")  # "Failed to load CPU gemm_4bit_forward ..."
    level = bnb.level
    for key, value in LIBRARY_QUIET.items():
        os.environ.setdefault(key, value)
    bnb.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=LIBRARIES + r"(\.|$)")
            yield
    finally:
        bnb.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def is_main_process() -> bool:
    """False in the other processes of `accelerate launch`, which stay quiet."""
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[Any], None]]:
    """A ProgressFn drawing a tqdm bar on stderr, closed when the block ends. Meanwhile the
    first Ctrl-C asks the work to stop at its next report (training after a checkpoint,
    illustration before the next page): the ProgressFn raises Cancelled there. A second
    Ctrl-C stops at once."""
    from tqdm import tqdm

    bar = None
    interrupted = threading.Event()

    def show(progress) -> None:
        nonlocal bar
        if interrupted.is_set():
            raise Cancelled()
        if bar is None or bar.unit != progress.unit:
            if bar is not None:
                bar.close()
            # disable=False: TQDM_DISABLE (quiet_libraries) is for the libraries' bars only
            bar = tqdm(total=progress.total, initial=progress.done, unit=progress.unit,
                       desc=description, file=sys.stderr, disable=False)
        bar.n = progress.done
        loss = [] if progress.loss is None else [f"loss {progress.loss:.4f}"]
        bar.set_postfix_str(" · ".join(loss + ([progress.message] if progress.message else [])))

    def interrupt(signum, frame) -> None:
        interrupted.set()
        print("\nstopping at the next step or page (Ctrl-C again stops at once)",
              file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupt) if in_main else None
    try:
        yield show
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
