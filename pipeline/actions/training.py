"""Training: the config for a run from a goal and options, its GPU-time estimate, training then
publishing the adapter to the user's private Hub repo, pushing or pulling it on its own, and
trying it: one quick picture of the character in a scene (`try_character`).

Training runs "here" (this machine's GPU, ZeroGPU or the CPU: `train`) or on Hugging Face Jobs
in the user's own account (`train_on_jobs`, then `job_status`, `follow_job`, `cancel_job`;
`job_train` is what runs inside the job)."""
from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from PIL import Image

from ..adapter_files import VALIDATION_IMAGE
from ..characters import Character, CharacterStore
from .. import turns
from ..checks import ArgumentError, choice, flag, number, shown, text
from ..hub.repos import HubResult, ensure_local_adapter, hub_record, install_adapter, push_adapter
from ..hub.tokens import TokenError, user_for_token
from ..illustrate import IllustrateConfig, adapter_ref, check_seed
from ..jobs import launch, remote
from ..jobs.bucket import bucket_id_for
from ..jobs.flavors import Flavor, JobPlan, find_flavor, plan_job
from ..jobs.launch import JobsUnavailable as JobsUnavailable  # for the doors
from ..jobs.record import JobRecord, load_record
from ..jobs.worker import Emit, run_job_training
from ..likeness import FAIR, character_identity, score_page
from ..render import RenderJob, render
from ..story import Page, find_characters, scene_prompt, set_scene
from ..safety import draw_safely, screen_text
from ..styles import DEFAULT_STYLE, get_style, load_styles
from ..progress import ProgressFn, counted
from ..settings import Settings
from ..training.config import PRESETS as PRESETS  # the goals, for the doors' forms
from ..training.config import TrainConfig, preset_config, preset_for_kind
from ..training.estimate import Estimate
from ..training.trainer import TrainResult, estimate_character, train_character
from ..work import recorded
from .drawing import drawing_in_force
from .gpu import gpu_job, waiting

MAX_OPTIONS_CHARS = 10_000  # every setting, written out, fits in a tenth of this


WHERE = ("here", "hf-jobs")  # where training runs: this machine, or Hugging Face Jobs


@dataclass(frozen=True)
class TrainingPlan:
    """A run before it starts: the character, its config and the GPU time still needed; on
    Hugging Face Jobs also the hardware, minutes and cost, and where the photos go."""

    character: str
    config: TrainConfig
    estimate: Estimate
    job: Optional[JobPlan] = None
    photos: str = ""  # on Jobs: where the photos go, and for how long

    def to_json(self) -> dict:
        return {"character": self.character, "config": self.config.to_dict(),
                "estimate": dataclasses.asdict(self.estimate),
                "job": self.job.to_json() if self.job else None, "photos": self.photos,
                "text": self.job.describe() if self.job else self.estimate.describe()}


@dataclass(frozen=True)
class Validation:
    """A trained adapter's validation image, scored against the character's real faces, so the
    parent sees whether training worked."""

    drawn: bool  # the adapter folder has a validation image
    likeness: Optional[dict]  # the character's score on it (no face descriptor); None unscored
    worked: Optional[bool]  # the likeness is at least fair; None: no image, or nothing to score
    text: str  # one line for the parent

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Trained:
    """What a training call did, how its validation image scored (None: not finished), and
    where the adapter went on the Hub (None: not asked, or the run is not finished yet)."""

    result: TrainResult
    config: TrainConfig
    hub: Optional[HubResult]
    validation: Optional[Validation] = None

    def to_json(self) -> dict:
        record = {k: v for k, v in dataclasses.asdict(self.result).items() if k != "adapter_dir"}
        return {**record, "config": self.config.to_dict(),
                "hub": self.hub.to_json() if self.hub else None,
                "validation": self.validation.to_json() if self.validation else None}


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
    likeness: Optional[int]  # 0 to 100 against its photos; None: a pet, or no face found
    likeness_note: str  # in words: "Mia: a close likeness (84/100)", "not found", ...

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "image"}


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
                  options: Optional[Mapping[str, Any]] = None, *, where: str = "here",
                  flavor: str = "", token: Optional[str] = None,
                  checkpoint_steps: Optional[int] = None) -> TrainingPlan:
    """The config of a run and the GPU time it still needs, before starting it; with
    where="hf-jobs", on that Jobs hardware (`flavor`, "" for TALEWEAVER_JOB_FLAVOR), with its
    minutes and cost (which needs the user's token: the prices come from the Hub)."""
    if where not in WHERE:
        raise ValueError(f"where training runs: {where!r} is not one of {', '.join(WHERE)}")
    character, config = training_config(settings, user, name, preset, options)
    estimate = estimate_character(settings, user, character.name, config)
    if where == "here":
        return TrainingPlan(character.name, config, estimate)
    chosen = find_flavor(jobs_hardware(token), flavor or settings.job_flavor)
    job = plan_job(settings, config, chosen, checkpoint_steps=checkpoint_steps,
                   steps_done=_steps_in_bucket(settings, user, character, config))
    if not estimate.steps_left:  # trained here already with exactly these settings
        job = dataclasses.replace(job, estimate=estimate)
    return TrainingPlan(character.name, config, estimate, job,
                        _photos_note(character, _namespace(token)))


def jobs_hardware(token: Optional[str]) -> list[Flavor]:
    """The GPU hardware Hugging Face Jobs offers, with prices, cheapest first."""
    return launch.available_flavors(token)


def train_on_jobs(settings: Settings, user: str, name: str, preset: str = "",
                  options: Optional[Mapping[str, Any]] = None, *, token: Optional[str],
                  flavor: str = "", checkpoint_steps: Optional[int] = None, follow: bool = True,
                  on_progress: Optional[ProgressFn] = None) -> JobRecord:
    """Train a character on Hugging Face Jobs in the user's own account, billed to it: its
    crops go to a private bucket for the job's time, the job trains and pushes the adapter to
    the private repo, and (when following, the default) it comes back into the local store.
    A job of this character that is still running is followed rather than started again.
    JobsUnavailable (no token, no Jobs permission, no billing) says why none can start."""
    character, config = training_config(settings, user, name, preset, options)
    running = load_record(settings, user, character)
    if running is None or not running.active:
        plan = plan_training(settings, user, character.name, preset, options, where="hf-jobs",
                             flavor=flavor, token=token, checkpoint_steps=checkpoint_steps)
        if not plan.estimate.steps_left:
            raise ValueError(f"{character.name} is already trained with these settings: "
                             "nothing for a job to do (change the steps or settings to train "
                             "again)")
        running = launch.start(settings, user, character, config, plan.job, token=token)
    if not follow:
        return running
    return remote.follow(settings, user, character, token=token, on_progress=on_progress)


def job_status(settings: Settings, user: str, name: str,
               token: Optional[str]) -> Optional[JobRecord]:
    """The character's training job on Hugging Face Jobs as it stands (None: it never had
    one); an ended one is settled here: its adapter brought here, its photos deleted."""
    character = CharacterStore(settings, user).get(name or "")
    return remote.status(settings, user, character, token=token)


def follow_job(settings: Settings, user: str, name: str, token: Optional[str],
               on_progress: Optional[ProgressFn] = None) -> JobRecord:
    """Follow the character's running job to its end with progress, then settle it."""
    character = CharacterStore(settings, user).get(name or "")
    return remote.follow(settings, user, character, token=token, on_progress=on_progress)


def cancel_job(settings: Settings, user: str, name: str, token: Optional[str]) -> JobRecord:
    """Cancel the character's running job: it is left as it was, its photos leave the bucket,
    the checkpoint stays there for the next job."""
    character = CharacterStore(settings, user).get(name or "")
    return remote.cancel(settings, user, character, token=token)


def job_train(settings: Settings, bucket_id: str, token: Optional[str], *, checkpoint_steps: int,
              emit: Emit) -> dict:
    """Inside a Hugging Face Job: train the character waiting in the bucket, push its adapter
    and delete the photos, printing progress, result or error lines with `emit`."""
    return run_job_training(settings, bucket_id, token, checkpoint_steps=checkpoint_steps,
                            emit=emit)


def _steps_in_bucket(settings: Settings, user: str, character: Character,
                     config: TrainConfig) -> int:
    """The steps a stopped job left in the bucket's checkpoint, when it trains this config."""
    record = load_record(settings, user, character)
    if record is None or record.active or record.state == "succeeded":
        return 0
    same = TrainConfig.from_dict(record.config).training_key() == config.training_key()
    return min(record.checkpoint_step, config.steps) if same else 0


def _namespace(token: Optional[str]) -> str:
    try:
        return user_for_token(token)
    except TokenError:
        return "<you>"


def _photos_note(character: Character, namespace: str) -> str:
    bucket = bucket_id_for(namespace, character)
    return (f"{character.name}'s {counted(len(character.crops), 'training photo')} (the square "
            f"crops, nothing else) go to a private storage bucket in your Hugging Face account, "
            f"{bucket}, for the job only: they are deleted when it ends, however it ends. Its "
            f"checkpoint stays there until {character.name} is trained, so a stopped job can be "
            "continued; then the whole bucket is deleted. The adapter goes to your private repo, "
            "and comes back to this machine.")


def train(settings: Settings, user: str, name: str, preset: str = "",
          options: Optional[Mapping[str, Any]] = None, *, token: Optional[str],
          publish: bool = True, chunk_steps: Optional[int] = None,
          max_chunks: Optional[int] = None,
          on_progress: Optional[ProgressFn] = None) -> Trained:
    """Train (or go on training) a character's adapter, then publish it to the user's private
    repo with their own token: a freshly trained adapter is uploaded; one that was already
    trained and pushed is reported, not uploaded again. Without a token the upload is skipped
    (the result says so) and the adapter stays on this machine. Refused while the character
    trains on Hugging Face Jobs. The run is recorded in the user's work (actions.work) with its
    progress and result; cancelling it there stops it at its next progress report
    (work.JobCancelled)."""
    character, config = training_config(settings, user, name, preset, options)
    running = load_record(settings, user, character)
    if running is not None and running.active:
        raise ValueError(f"{character.name} is training on Hugging Face Jobs ({running.job_id}): "
                         "follow that job or cancel it before training here")
    with gpu_job(settings, user, f"training {character.name}"), \
            recorded(settings, user, "training", character.name, f"Training {character.name}",
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
        checked = check_validation(settings, user, character.name) if result.done else None
        trained = Trained(result, config, published, checked)
        job.finish(f"{character.name} is trained ({counted(result.step, 'step')})" if result.done
                   else f"step {result.step} of {result.total}; training again goes on from "
                        "there", trained.to_json())
    return trained


def check_validation(settings: Settings, user: str, name: str) -> Validation:
    """Score the character's validation image with the likeness engine (on the CPU, after the
    GPU work): is the character found on it, and how alike?"""
    store = CharacterStore(settings, user)
    character = store.get(text("name", name))
    path = store.adapter_dir(character) / VALIDATION_IMAGE
    if not path.is_file():
        return Validation(False, None, None, "No validation image was drawn (the training "
                          "setting validation: \"auto\" draws one on a GPU only, \"on\" "
                          "everywhere).")
    with Image.open(path) as image:
        score = score_page(image.convert("RGB"),
                           [(character.name, character_identity(store, character))])
    one = score.characters[0]
    line = f"Validation image: {one.describe()}"
    if not one.scored:
        return Validation(True, None, None, f"{line}; look at it to judge the likeness.")
    worked = one.found and not one.looks_like and not one.copied and one.likeness >= FAIR
    verdict = ("the adapter has learned the face." if worked else
               "the adapter may not have learned the face yet: try more steps, or more and "
               "clearer photos.")
    return Validation(True, one.to_json(), worked, f"{line}: {verdict}")


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


def try_character(settings: Settings, user: str, name: str, scene: str = "", *,
                  adapter_weight: float = 1.0, style: str = DEFAULT_STYLE,
                  seed: Optional[int] = None, token: Optional[str] = None,
                  on_progress: Optional[ProgressFn] = None) -> Tried:
    """Draw one quick picture of a trained character in a scene ("on a swing"; the name is put
    in front when the scene doesn't say it), with only its adapter, at `adapter_weight`
    (0 to 2: lower follows the scene more, higher the photos more), in a style, at the size
    and steps this machine draws pages (no second pass), check it for safety and score its
    likeness to the character's photos. A seed of None picks one, which the result gives. It
    waits for its turn on the GPU, reporting the wait to `on_progress`."""
    character = CharacterStore(settings, user).get(text("name", name))
    scene = " ".join(text("scene", scene or "").split()) or \
        "smiling in a sunny garden"
    if not find_characters(scene, [character]):
        scene = f"{character.name} {scene}"
    screen_text(scene, "the scene")
    scene = set_scene(Page("", ""), scene, [character], settings, label="the scene").scene
    chosen = get_style(choice("style", style, tuple(load_styles())))
    options = drawing_in_force(settings, chosen.name, IllustrateConfig(
        adapter_weight=number("adapter_weight", adapter_weight, 0, 2, low_open=True)))
    seed = secrets.randbelow(2**31) if seed is None else check_seed(seed)
    folder = ensure_local_adapter(settings, user, character, token)
    job = RenderJob(prompt=chosen.prompt(scene_prompt(scene, [character])),
                    negative=chosen.negative, seeds=(seed,), width=options.width,
                    height=options.height, steps=options.steps, guidance=chosen.guidance,
                    adapters=(adapter_ref(character, folder, options.adapter_weight),))
    wait = waiting(on_progress, 0, 1, "picture")
    with gpu_job(settings, user, f"trying {character.name}"), turns.adapters_held(wait), \
            turns.turn(user, on_wait=wait):
        [drawn] = draw_safely(settings, lambda seeds: render(
            settings, dataclasses.replace(job, seeds=tuple(seeds))), [seed],
            image=lambda picture: picture.image)
    if drawn.image is None:
        raise ValueError(f"{character.name} could not be drawn safely in this scene: the "
                         f"picture safety check flagged {counted(drawn.tries, 'try', 'tries')}; "
                         "change the scene and try again")
    image = drawn.image.image
    [score] = score_page(image, [(character.name, character_identity(
        CharacterStore(settings, user), character))]).characters
    return Tried(character.name, scene, job.prompt, drawn.seed, options.adapter_weight,
                 job.width, job.height, job.steps, image,
                 score.likeness if score.found else None, score.describe())
