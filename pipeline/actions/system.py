"""The machine the doors run on: where GPU work goes, loading the models at start, and the tiny
test model for CPU demos."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..hardware import detect, on_zerogpu, prepare_zerogpu
from ..hardware import use_cpu_threads as use_cpu_threads  # for the doors, at a process's start
from ..models import ModelUnavailableError as ModelUnavailableError  # for the doors
from ..settings import Settings


@dataclass(frozen=True)
class Machine:
    """What the app tells a visitor about where the work runs."""

    has_gpu: bool
    zerogpu: bool
    model: str  # the base model: a Hub id, or a local folder by its name only


def machine(settings: Settings) -> Machine:
    """Where GPU work runs here, and which base model draws (never a server path)."""
    model = settings.base_model
    model = Path(model).name if Path(model).is_dir() else model
    return Machine(detect(settings).has_gpu, on_zerogpu(), model)


def preload(settings: Settings) -> Optional[str]:
    """Load the base model now (on ZeroGPU it must load outside any GPU call), and there the
    story model too, since a GPU call's worker forgets what it loads. Returns why drafting is
    unavailable, or None."""
    from ..draft import load_story_model
    from ..models import load_pipeline

    load_pipeline(settings)
    if on_zerogpu():
        try:
            load_story_model(settings)
        except ModelUnavailableError as err:
            return str(err)
    return None


def preload_in_background(settings: Settings) -> Future:
    """Start `preload` in a thread of its own, so that the model loads (reading gigabytes of
    weights, mostly waiting on the disk) while the app builds its UI; `.result()` waits for it
    (before launching: ZeroGPU packs the model's weights at launch) and raises its error."""
    prepare_zerogpu()  # before any model can move to "cuda" in that thread
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taleweaver-preload")
    loading = pool.submit(preload, settings)
    pool.shutdown(wait=False)
    return loading


def make_tiny_model(out_dir: Path, *, seed: int = 0, channels: tuple[int, int] = (32, 64)) -> Path:
    """Build and save a tiny random SDXL-architecture pipeline (tests and CPU demos)."""
    from ..testing import save_tiny_model

    return save_tiny_model(out_dir, seed=seed, channels=channels)


def own_token() -> Optional[str]:
    """HF_TOKEN: the CLI's (or a duplicated Space's) own Hugging Face token, or None."""
    from ..hub.tokens import token_from_env

    return token_from_env()


def user_for_token(token: Optional[str]) -> str:
    """The Hugging Face user a token belongs to (remembered a while by a hash of the token);
    TokenError when the Hub refuses it or can't be asked."""
    from ..hub.tokens import user_for_token as whose

    return whose(token)
