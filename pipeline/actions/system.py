"""The machine the doors run on: where GPU work goes, starting up (the models, or demo mode on
the tiny model where the base model can't load), whether drafting works, and the tiny test
model for CPU demos."""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checks import shown as shown  # how messages repeat a refused value, for the doors
from ..draft import load_story_model, story_model_problem
from ..hardware import detect, on_zerogpu, prepare_zerogpu
from ..hardware import use_cpu_threads as use_cpu_threads  # for the doors, at a process's start
from ..models import ModelUnavailableError as ModelUnavailableError  # for the doors
from ..models import DEMO_SAFETY_DIR, demo_model, load_pipeline
from ..safety import load_safety_model
from ..settings import Settings
from ..testing import is_test_model
from ..training.estimate import record_phase_time

DEMO_RESOLUTION = 128  # px: training crops in demo mode (a character trains in minutes on a CPU)


@dataclass(frozen=True)
class Machine:
    """What the app tells a visitor about where the work runs."""

    has_gpu: bool
    zerogpu: bool
    model: str  # the base model: a Hub id, or a local folder by its name only
    test_model: bool  # the tiny random test model, which draws noise


@dataclass(frozen=True)
class Startup:
    """How the app starts: the settings it runs with, and for the operator's log why it runs in
    demo mode ("": it doesn't), why drafting stories is unavailable and why the picture safety
    check is ("": they aren't)."""

    settings: Settings
    demo_reason: str = ""
    no_drafts: str = ""
    no_safety: str = ""  # why the picture safety check is unavailable: no picture can be drawn

    @property
    def demo(self) -> bool:
        return bool(self.demo_reason)


def machine(settings: Settings) -> Machine:
    """Where GPU work runs here, and which base model draws (never a server path)."""
    model = settings.base_model
    test_model = is_test_model(model)
    model = Path(model).name if Path(model).is_dir() else model
    return Machine(detect(settings).has_gpu, on_zerogpu(), model, test_model)


def start(settings: Settings) -> Startup:
    """Load the base model and the picture safety classifier now (on ZeroGPU the base model
    must load outside any GPU call), and there the story model too, since a GPU call's worker
    forgets what it loads.

    Where the base model can't be loaded (not downloaded and the Hub unreachable, no such
    folder, too little memory), the app runs in demo mode instead: on the tiny test model,
    built once into <data_dir>/demo-model, with 128 px training crops and the tiny safety
    classifier kept beside it (the tiny model draws noise). The tiny model on a CPU runs on
    one torch thread unless TALEWEAVER_CPU_THREADS says otherwise: its kernels are too small
    to share out (bench/first_hour.py).
    """
    try:
        _load_timed(settings)
        started = Startup(settings, "", _drafting(settings), _checking(settings))
    except (ModelUnavailableError, MemoryError) as err:
        folder = demo_model(settings)
        demo = dataclasses.replace(settings, base_model=str(folder), vae="",
                                   safety_model=str(folder / DEMO_SAFETY_DIR),
                                   resolution=min(settings.resolution, DEMO_RESOLUTION))
        _load_timed(demo)
        started = Startup(demo, str(err) or type(err).__name__, _drafting(demo),
                          _checking(demo))
    if is_test_model(started.settings.base_model) and not settings.cpu_threads and \
            not detect(started.settings).has_gpu:
        import torch

        torch.set_num_threads(1)
    return started


def drafting_problem(settings: Settings) -> str:
    """Why drafting stories is unavailable here, for the operator's log ("" when it works or
    may work); nothing is loaded to find out."""
    return story_model_problem(settings)


def start_in_background(settings: Settings) -> Future:
    """Run `start` in a thread of its own, so that the model loads (reading gigabytes of
    weights, mostly waiting on the disk) while the app builds its UI; `.result()` waits for its
    Startup (before launching: ZeroGPU packs the model's weights at launch)."""
    prepare_zerogpu()  # before any model can move to "cuda" in that thread
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taleweaver-start")
    starting = pool.submit(start, settings)
    pool.shutdown(wait=False)
    return starting


def _load_timed(settings: Settings) -> None:
    hardware = detect(settings)
    started = time.perf_counter()
    load_pipeline(settings, hardware)
    record_phase_time(settings, hardware, "load", time.perf_counter() - started)


def _drafting(settings: Settings) -> str:
    if not on_zerogpu():
        return story_model_problem(settings)
    try:
        load_story_model(settings)
    except ModelUnavailableError as err:
        return str(err)
    return ""


def _checking(settings: Settings) -> str:
    try:
        load_safety_model(settings)
    except ModelUnavailableError as err:
        return str(err)
    return ""


def make_tiny_model(out_dir: Path, *, seed: int = 0,
                    channels: tuple[int, int] = (32, 64)) -> tuple[Path, Path]:
    """Build and save a tiny random SDXL-architecture pipeline (tests and CPU demos), and in
    its `safety-classifier` folder a tiny safety classifier that passes every picture (it
    draws noise; the real classifier needs the Hub or a download). Returns both folders."""
    from ..testing import save_tiny_model, save_tiny_safety_model

    out = save_tiny_model(out_dir, seed=seed, channels=channels)
    return out, save_tiny_safety_model(out / DEMO_SAFETY_DIR)


def own_token() -> Optional[str]:
    """HF_TOKEN: the CLI's (or a duplicated Space's) own Hugging Face token, or None."""
    from ..hub.tokens import token_from_env

    return token_from_env()


def user_for_token(token: Optional[str], *, fresh: bool = False) -> str:
    """The Hugging Face user a token belongs to (remembered a minute by a hash of the token;
    `fresh` asks the Hub now, for deleting); TokenError when the Hub refuses it or can't be
    asked."""
    from ..hub.tokens import user_for_token as whose

    return whose(token, fresh=fresh)
