"""Training: the config for a run from a goal and options, its GPU-time estimate, training then
publishing the adapter to the user's private Hub repo, pushing or pulling it on its own, and
trying it: one quick picture of the character in a scene."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from PIL import Image

from ..adapter_files import ADAPTER_WEIGHTS, VALIDATION_IMAGE
from ..characters import Character, CharacterStore
from ..illustrate import AdapterRef, IllustrateConfig, RenderJob, check_seed, render
from ..story import Page, find_characters, scene_prompt, set_scene
from ..styles import DEFAULT_STYLE, get_style
from ..hub.repos import HubResult, ensure_local_adapter, hub_record, install_adapter, push_adapter
from ..progress import ProgressFn, counted
from ..settings import Settings
from ..training.config import PRESETS as PRESETS  # the goals, for the doors' forms
from ..training.config import TrainConfig, preset_config, preset_for_kind
from ..training.estimate import Estimate
from ..training.trainer import TrainResult, estimate_character, train_character
from ..work import recorded
from .books import drawing_in_force


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


@dataclass(frozen=True)
class Tried:
    """One quick picture of a character, drawn with its adapter alone, and how to draw it again."""

    character: str
    scene: str  # as drawn: the character's name, then the scene
    prompt: str
    seed: int
    adapter_weight: float
    width: int
    height: int
    steps: int
    image: Image.Image
    # How much the picture looks like the character's photos, 0 to 100: None until the
    # character carries the face identity that pipeline/likeness.py scores against.
    likeness: Optional[int] = None

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "image"}


def parse_options(text: str) -> dict[str, Any]:
    """Training settings written as a JSON object ('{"rank": 16}'); "" is none."""
    if not (text or "").strip():
        return {}
    try:
        options = json.loads(text)
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
    character = CharacterStore(settings, user).get(name or "")
    config = preset_config(preset or preset_for_kind(character.kind),
                           max(1, len(character.crops)), **dict(options or {}))
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
    (the result says so) and the adapter stays on this machine. The run is recorded in the
    user's work (actions.work) with its progress and result; cancelling it there stops it at
    its next progress report (work.JobCancelled)."""
    character, config = training_config(settings, user, name, preset, options)
    with recorded(settings, user, "training", character.name, f"Training {character.name}",
                  on_progress) as job:
        result = train_character(settings, user, character.name, config,
                                 chunk_steps=chunk_steps, max_chunks=max_chunks,
                                 on_progress=job.report)
        published = None
        if publish and result.done:
            record = hub_record(settings, user, character)
            if record is not None and result.chunks == 0:
                published = HubResult("pushed", record.repo_id, record.url,
                                      f"{character.name}'s adapter is in your private repo "
                                      f"{record.repo_id}: {record.url}", revision=record.revision)
            else:
                published = push_adapter(settings, user, character, token)
        trained = Trained(result, config, published)
        job.finish(f"{character.name} is trained ({counted(result.step, 'step')})" if result.done
                   else f"step {result.step} of {result.total}; training again goes on from "
                        "there", trained.to_json())
    return trained


def push(settings: Settings, user: str, name: str, token: Optional[str], *,
         with_validation_image: bool = False) -> HubResult:
    """Upload a trained adapter to the user's private repo <them>/taleweaver-<name>."""
    character = CharacterStore(settings, user).get(name or "")
    return push_adapter(settings, user, character, token,
                        include_validation_image=with_validation_image)


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
    path = store.adapter_dir(store.get(name)) / VALIDATION_IMAGE
    return path if path.is_file() else None


def try_character(settings: Settings, user: str, name: str, scene: str = "", *,
                  adapter_weight: float = 1.0, style: str = DEFAULT_STYLE,
                  seed: Optional[int] = None, token: Optional[str] = None) -> Tried:
    """Draw one quick picture of a trained character in a scene ("on a swing"; the name is put
    in front when the scene doesn't say it), with only its adapter, at `adapter_weight`
    (0 to 2: lower follows the scene more, higher the photos more), in a style, at the size
    and steps this machine draws pages. A seed of None picks one, which the result gives."""
    character = CharacterStore(settings, user).get(name or "")
    scene = " ".join((scene or "").split()) or "smiling in a sunny garden"
    if not find_characters(scene, [character]):
        scene = f"{character.name} {scene}"
    scene = set_scene(Page("", ""), scene, [character], settings, label="the scene").scene
    chosen = get_style(style)
    options = drawing_in_force(settings, style,  # IllustrateConfig checks the weight
                               IllustrateConfig(adapter_weight=float(adapter_weight)))
    seed = secrets.randbelow(2**31) if seed is None else check_seed(seed)
    folder = ensure_local_adapter(settings, user, character, token)
    job = RenderJob(prompt=chosen.prompt(scene_prompt(scene, [character])),
                    negative=chosen.negative, seeds=(seed,), width=options.width,
                    height=options.height, steps=options.steps, guidance=chosen.guidance,
                    adapters=(_adapter(character, folder, options.adapter_weight),))
    [image] = render(settings, job)
    return Tried(character.name, scene, job.prompt, seed, options.adapter_weight,
                 job.width, job.height, job.steps, image)


def _adapter(character: Character, folder: Path, weight: float) -> AdapterRef:
    """The character's adapter for a render call, named by its weights file's time, so that a
    retrained adapter is never taken for the one a pipeline may still hold."""
    stamp = (folder / ADAPTER_WEIGHTS).stat().st_mtime_ns
    tag = hashlib.sha256(f"{folder}:{stamp}".encode()).hexdigest()[:8]
    return AdapterRef(f"tw_try_{character.slug.replace('-', '_')}_{tag}", str(folder), weight)
