"""The machine the doors run on: where GPU work goes, loading the models at start, and the tiny
test model for CPU demos."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checks import shown as shown  # how messages repeat a refused value, for the doors
from ..hardware import detect, on_zerogpu
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


def preload(settings: Settings) -> list[str]:
    """Load the base model and the picture safety classifier now (on ZeroGPU the base model
    must load outside any GPU call), and there the story model too, since a GPU call's worker
    forgets what it loads. Returns what is unavailable and why, for the server's log."""
    from ..draft import load_story_model
    from ..models import load_pipeline
    from ..safety import load_safety_model

    load_pipeline(settings)
    problems = []
    loaders = [("Checking pictures", load_safety_model)]
    if on_zerogpu():
        loaders.append(("Story drafting", load_story_model))
    for what, load in loaders:
        try:
            load(settings)
        except ModelUnavailableError as err:
            problems.append(f"{what} is unavailable: {err}")
    return problems


def make_tiny_model(out_dir: Path, *, seed: int = 0,
                    channels: tuple[int, int] = (32, 64)) -> tuple[Path, Path]:
    """Build and save a tiny random SDXL-architecture pipeline (tests and CPU demos), and in
    its `safety-classifier` folder a tiny safety classifier that passes every picture (it
    draws noise; the real classifier needs the Hub or a download). Returns both folders."""
    from ..testing import save_tiny_model, save_tiny_safety_model

    out = save_tiny_model(out_dir, seed=seed, channels=channels)
    return out, save_tiny_safety_model(out / "safety-classifier")


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
