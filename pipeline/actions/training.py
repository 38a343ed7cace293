"""Training: the config for a run from a goal and options, its GPU-time estimate, training then
publishing the adapter to the user's private Hub repo, and pushing or pulling it on its own."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ..adapter_files import VALIDATION_IMAGE
from ..characters import Character, CharacterStore
from ..checks import ArgumentError, choice, flag, shown, text
from ..hub.repos import HubResult, ensure_local_adapter, hub_record, install_adapter, push_adapter
from ..progress import ProgressFn
from ..settings import Settings
from ..training.config import PRESETS as PRESETS  # the goals, for the doors' forms
from ..training.config import TrainConfig, preset_config, preset_for_kind
from ..training.estimate import Estimate
from ..training.trainer import TrainResult, estimate_character, train_character
from .gpu import gpu_job


MAX_OPTIONS_CHARS = 10_000  # every setting, written out, fits in a tenth of this


@dataclass(frozen=True)
class TrainingPlan:
    """A run before it starts: the character, its config and the GPU time still needed."""

    character: str
    config: TrainConfig
    estimate: Estimate

    def to_json(self) -> dict:
        return {"character": self.character, "config": self.config.to_dict(),
                "estimate": dataclasses.asdict(self.estimate), "text": self.estimate.describe()}


@dataclass(frozen=True)
class Trained:
    """What a training call did, and where the adapter went on the Hub (None: not asked, or
    the run is not finished yet)."""

    result: TrainResult
    config: TrainConfig
    hub: Optional[HubResult]

    def to_json(self) -> dict:
        record = {k: v for k, v in dataclasses.asdict(self.result).items() if k != "adapter_dir"}
        return {**record, "config": self.config.to_dict(),
                "hub": self.hub.to_json() if self.hub else None}


@dataclass(frozen=True)
class Pulled:
    """Where a character's adapter is on this machine, and how it got there."""

    character: str
    path: Path
    source: str  # "local", "hub" or "folder"

    def to_json(self) -> dict:
        return {"character": self.character, "path": str(self.path), "source": self.source}


def parse_options(written: str) -> dict[str, Any]:
    """Training settings written as a JSON object ('{"rank": 16}'); "" is none."""
    if not text("options", written or "", MAX_OPTIONS_CHARS).strip():
        return {}
    try:
        options = json.loads(written)
    except RecursionError:
        raise ValueError("more training settings: nested too deeply; write e.g. "
                         '{"rank": 16}') from None
    except json.JSONDecodeError as err:
        raise ValueError(f"more training settings: not valid JSON ({err.msg} at character "
                         f"{err.pos}); write e.g. {{\"rank\": 16}}") from None
    if not isinstance(options, dict):
        raise ValueError('more training settings: write a JSON object, e.g. {"rank": 16}')
    return options


def training_config(settings: Settings, user: str, name: str, preset: str = "",
                    options: Optional[Mapping[str, Any]] = None) -> tuple[Character, TrainConfig]:
    """The character and its TrainConfig: the goal's preset ("" chooses from its kind), steps
    scaled by its photos, then the given settings (any TrainConfig field; unknown is an error)."""
    character = CharacterStore(settings, user).get(text("name", name))
    preset = choice("preset", preset, ("", *PRESETS)) if preset else ""
    options = {} if options is None else options
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ArgumentError(f"options: expected training settings by name, got {shown(options)}")
    config = preset_config(preset or preset_for_kind(character.kind),
                           max(1, len(character.crops)), **dict(options))
    return character, config


def plan_training(settings: Settings, user: str, name: str, preset: str = "",
                  options: Optional[Mapping[str, Any]] = None) -> TrainingPlan:
    """The config of a run and the GPU time it still needs, before starting it."""
    character, config = training_config(settings, user, name, preset, options)
    return TrainingPlan(character.name, config,
                        estimate_character(settings, user, character.name, config))


def train(settings: Settings, user: str, name: str, preset: str = "",
          options: Optional[Mapping[str, Any]] = None, *, token: Optional[str],
          publish: bool = True, chunk_steps: Optional[int] = None,
          max_chunks: Optional[int] = None,
          on_progress: Optional[ProgressFn] = None) -> Trained:
    """Train (or go on training) a character's adapter, then publish it to the user's private
    repo with their own token: a freshly trained adapter is uploaded; one that was already
    trained and pushed is reported, not uploaded again. Without a token the upload is skipped
    (the result says so) and the adapter stays on this machine."""
    character, config = training_config(settings, user, name, preset, options)
    with gpu_job(settings, user, f"training {character.name}"):
        result = train_character(settings, user, character.name, config,
                                 chunk_steps=chunk_steps, max_chunks=max_chunks,
                                 on_progress=on_progress)
    published = None
    if publish and result.done:
        record = hub_record(settings, user, character)
        if record is not None and result.chunks == 0:
            published = HubResult("pushed", record.repo_id, record.url,
                                  f"{character.name}'s adapter is in your private repo "
                                  f"{record.repo_id}: {record.url}", revision=record.revision)
        else:
            published = push_adapter(settings, user, character, token)
    return Trained(result, config, published)


def push(settings: Settings, user: str, name: str, token: Optional[str], *,
         with_validation_image: bool = False) -> HubResult:
    """Upload a trained adapter to the user's private repo <them>/taleweaver-<name>."""
    character = CharacterStore(settings, user).get(text("name", name))
    return push_adapter(settings, user, character, token,
                        include_validation_image=flag("with_validation_image",
                                                      with_validation_image))


def pull(settings: Settings, user: str, name: str, token: Optional[str],
         source: Optional[Path] = None) -> Pulled:
    """Make sure a character's adapter is on this machine: copied from a folder shaped like
    its repo, else downloaded from its private repo (a local one always wins)."""
    store = CharacterStore(settings, user)
    character = store.get(name)
    if source is not None:
        return Pulled(character.name, install_adapter(settings, user, character, source),
                      "folder")
    where = "local" if store.has_adapter(character) else "hub"
    return Pulled(character.name, ensure_local_adapter(settings, user, character, token), where)


def validation_image(settings: Settings, user: str, name: str) -> Optional[Path]:
    """The picture the adapter drew at the end of training, if there is one."""
    store = CharacterStore(settings, user)
    path = store.adapter_dir(store.get(text("name", name))) / VALIDATION_IMAGE
    return path if path.is_file() else None
