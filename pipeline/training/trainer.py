"""DreamBooth-LoRA training of one character on SDXL, in resumable chunks.

    python -m pipeline train Mia --preset person            # one call, until done
    python -m pipeline train Mia --chunk-steps 100          # 100 steps, then stop; run again to go on
    accelerate launch -m pipeline train Mia                 # data-parallel on every GPU

`train_chunk` is the GPU function (on ZeroGPU one `spaces.GPU` call in a forked worker): it loads
the checkpoint (or starts), trains at most `max_steps` steps or until its time is up, and writes
a checkpoint; the chunk that reaches the last step also writes the adapter folder. Arguments and
result are small and picklable. `train_character` is the loop the CLI, the app and the API share:
it calls `train_chunk` until the run is done, reporting progress per step (per chunk on ZeroGPU,
where callbacks can't cross into the worker, and where the class images for prior preservation
are drawn first, in calls of their own).

A run split into chunks ends with exactly the adapter of an uninterrupted run with the same seed
(bitwise on the CPU): every random draw depends only on (seed, step, process) and the checkpoint
holds the rest of the state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from PIL import Image

from .. import turns
from ..adapter_files import CHECKPOINT_DIR, VALIDATION_IMAGE
from ..characters import Character, CharacterStore, Crop
from ..hardware import ZEROGPU_CALL_SECONDS, Hardware, detect, gpu, on_zerogpu
from ..models import is_loaded, load_pipeline, load_quantized_pipeline, pipeline_lock
from ..progress import Cancelled, Progress, ProgressFn
from ..settings import Settings
from .checkpoint import (CorruptCheckpoint, clear_checkpoint, load_checkpoint, save_checkpoint,
                         saved_progress, set_aside)
from .class_images import (class_image_paths, generate_class_images, images_per_call,
                           load_class_images)
from .config import TrainConfig, draws_validation
from .data import class_prompt, instance_prompt
from .estimate import (CALL_OVERHEAD_SECONDS, SAFETY, Estimate, estimate_training,
                       phase_seconds, record_phase_time, record_step_time, step_seconds,
                       validation_estimate)
from .finish import finished, write_adapter, write_validation_image
from .run import TrainingError, TrainingRun, make_accelerator, open_run, optimizer_name

log = logging.getLogger(__name__)
LOSS_WINDOW = 20  # steps averaged for the loss shown in progress


@dataclass(frozen=True)
class ChunkResult:
    """Where a run stands after one chunk (small and picklable: it crosses ZeroGPU's fork)."""

    step: int
    total: int
    loss: Optional[float]  # mean over this chunk's last steps; None if it trained none
    seconds_per_step: Optional[float]  # median measured in this chunk
    done: bool  # the adapter folder is written
    warning: str = ""


@dataclass(frozen=True)
class TrainResult:
    """What train_character did: where the adapter is and how the run went."""

    character: str
    adapter_dir: Path
    done: bool
    step: int
    total: int
    loss: Optional[float]
    chunks: int
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def validation_image(self) -> Path:
        return self.adapter_dir / VALIDATION_IMAGE


def estimate_character(settings: Settings, user: str, name: str, config: TrainConfig) -> Estimate:
    """GPU time still needed to train this character with this config (for the app to show)."""
    store, character = _character(settings, user, name)
    missing = 0
    if config.prior_preservation:
        have = class_image_paths(settings, user, character.kind, config.class_images)
        missing = config.class_images - len(have)
    hardware = detect(settings)
    done = saved_progress(store.path(character, CHECKPOINT_DIR),
                          _run_key(settings, hardware, character, config))
    if finished(settings, store, character, config):
        done = config.steps
    return estimate_training(settings, config, steps_done=done, class_images_missing=missing,
                             model_loaded=is_loaded(settings, hardware), hardware=hardware)


def train_character(settings: Settings, user: str, name: str, config: TrainConfig, *,
                    chunk_steps: Optional[int] = None, max_chunks: Optional[int] = None,
                    on_progress: Optional[ProgressFn] = None) -> TrainResult:
    """Train (or go on training) a character's adapter until done, or for `max_chunks` chunks.

    Each chunk ends in a checkpoint and waits for its turn on the GPU (turns.py), so a crash
    loses at most one chunk and other users' pages get the GPU between chunks. A chunk is at
    most `chunk_steps` steps; on ZeroGPU what fits in one call, elsewhere at most
    TALEWEAVER_CHECKPOINT_SECONDS of steps. Cancelled raised by `on_progress` stops at the
    next step, after a checkpoint.
    """
    started = time.monotonic()
    store, character = _character(settings, user, name)
    hardware = detect(settings)
    sliced = on_zerogpu()
    warnings: list[str] = []
    chunks, result = 0, None
    done = saved_progress(store.path(character, CHECKPOINT_DIR),
                          _run_key(settings, hardware, character, config))
    waiting = _waiting(on_progress, lambda: done, config.steps)
    if config.prior_preservation and sliced:
        with turns.turn(user, exclusive=True, on_wait=waiting):
            _make_class_images_in_slices(settings, user, character.kind, config, on_progress)
    if not finished(settings, store, character, config):
        while max_chunks is None or chunks < max_chunks:
            steps = chunk_steps or (_steps_per_call(settings, hardware, config) if sliced
                                    else config.steps)
            with turns.turn(user, exclusive=True, on_wait=waiting):
                result = train_chunk(settings, user, name, config, steps,
                                     on_progress=None if sliced else on_progress,
                                     seconds=None if sliced else settings.checkpoint_seconds)
            chunks, done = chunks + 1, result.step
            warnings += [result.warning] if result.warning else []
            if sliced and on_progress is not None:
                on_progress(_progress(result.step, result.total, result.loss,
                                      result.seconds_per_step))
            if result.done:
                break
    step = config.steps if result is None else result.step
    return TrainResult(character=character.name, adapter_dir=store.adapter_dir(character),
                       done=result is None or result.done, step=step, total=config.steps,
                       loss=None if result is None else result.loss, chunks=chunks,
                       seconds=time.monotonic() - started, warnings=tuple(warnings))


def _waiting(on_progress: Optional[ProgressFn], step: Callable[[], int],
             total: int) -> Optional[turns.WaitFn]:
    """Progress reports while a chunk waits for its turn on the GPU."""
    if on_progress is None:
        return None
    return lambda ahead: on_progress(Progress(step(), total, "step",
                                              message=f"waiting for the GPU ({ahead} ahead)"))


def chunk_duration(settings: Settings, user: str, name: str, config: TrainConfig, max_steps: int,
                   on_progress: Optional[ProgressFn] = None,
                   seconds: Optional[float] = None) -> float:
    """Seconds to ask ZeroGPU for: the steps this chunk will train, plus the finish if it's the last."""
    hardware = detect(settings)
    store, character = _character(settings, user, name)
    done = saved_progress(store.path(character, CHECKPOINT_DIR),
                          _run_key(settings, hardware, character, config))
    steps = max(0, min(max_steps, config.steps - done))
    per_step, _ = step_seconds(settings, hardware, config)
    seconds = CALL_OVERHEAD_SECONDS + steps * (per_step or 1.0) * SAFETY
    if done + steps >= config.steps:
        seconds += _finish_seconds(settings, hardware, config)
    return min(float(ZEROGPU_CALL_SECONDS), seconds)


@gpu(duration=chunk_duration)
def train_chunk(settings: Settings, user: str, name: str, config: TrainConfig, max_steps: int,
                on_progress: Optional[ProgressFn] = None,
                seconds: Optional[float] = None) -> ChunkResult:
    """Train at most `max_steps` more steps (less if ZeroGPU's time runs out, or past about
    `seconds` of steps), then checkpoint. Cancelled from `on_progress` stops after the step
    it came in, with a checkpoint, and is raised again.

    Draws missing class images first. The chunk that reaches `config.steps` writes the adapter
    folder instead of a checkpoint: diffusers and kohya weights and train_config.json (a
    TrainingRecord: the config and the base model, resolution and trigger it trained on), swapped
    in whole; then it removes the checkpoint and, where asked (config.validation), draws the
    validation image with the layers still in place, after the adapter is saved and usable. On
    the shared pipeline it holds models.pipeline_lock() throughout (illustration in another
    thread waits for it), and refuses to start (models.PipelineInUseError) while a book holds
    adapters.
    """
    started = time.monotonic()
    store, character = _character(settings, user, name)
    crops = _load_crops(store, character)
    hardware = detect(settings)
    accelerator = make_accelerator(hardware)
    if accelerator.num_processes > 1:
        hardware = dataclasses.replace(hardware, device=str(accelerator.device))
    deadline = None
    if on_zerogpu():
        deadline = (started + chunk_duration(settings, user, name, config, max_steps)
                    - _finish_seconds(settings, hardware, config))
    main = accelerator.is_main_process
    _load_timed(settings, hardware, config, record=main)
    class_images = _class_images(settings, user, character.kind, config, accelerator, on_progress)
    folder = store.path(character, CHECKPOINT_DIR)
    key = _run_key(settings, hardware, character, config)
    preparing = time.perf_counter()
    with _training_pipeline(settings, hardware, config) as pipe, \
            _explain_out_of_memory(config, settings), \
            open_run(pipe, accelerator, hardware, config, crops, class_images,
                     _prompts(character, config), settings.resolution) as run:
        start, warning = _resume(run, folder, key, config)
        if main and config.quantize == "none":  # a quantized UNet loads here too: not setup
            record_phase_time(settings, hardware, "setup", time.perf_counter() - preparing)
        if seconds is not None:
            deadline = min(deadline or math.inf, time.monotonic() + seconds)
        step, losses, times, stopped = _train_steps(
            run, start, min(config.steps, start + max_steps), deadline, on_progress)
        done = step >= config.steps
        if accelerator.is_main_process:
            if step > start and not done:
                save_checkpoint(folder, run.state(step, key), config.steps)
            if len(times) > 1:  # the mean: what the clock sees, slow steps included
                record_step_time(settings, hardware, config, statistics.fmean(times[1:]))
            if done:
                if on_progress is not None and not stopped:
                    on_progress(_finishing(step, losses, settings, hardware, config))
                write_adapter(store, character, run, settings, hardware, config)
                clear_checkpoint(folder)
                if draws_validation(config, hardware.has_gpu):
                    unsafe = write_validation_image(store, character, run, settings, hardware,
                                                    config)
                    warning = "; ".join(filter(None, [warning, unsafe]))
        accelerator.wait_for_everyone()
    if stopped and step < config.steps:
        raise Cancelled(f"training {character.name} stopped at step {step} of {config.steps}; "
                        "it goes on from there next time")
    return ChunkResult(step=step, total=config.steps, loss=_mean_loss(losses),
                       seconds_per_step=_per_step(times), done=step >= config.steps,
                       warning=warning)


def _train_steps(run: TrainingRun, start: int, end: int, deadline: Optional[float],
                 on_progress: Optional[ProgressFn]) -> tuple[int, list[float], list[float], bool]:
    """Steps `start` to `end` (fewer if the next would pass the deadline, or when
    `on_progress` raises Cancelled): the step reached, the losses, the seconds of each step and
    whether it was cancelled (in any process, under accelerate launch)."""
    step, losses, times, stopped = start, [], [], False
    while step < end and not stopped and not (
            deadline and times and time.monotonic() + times[-1] > deadline):
        tick = time.perf_counter()
        losses.append(run.mean_across_processes(run.step(step)))
        times.append(time.perf_counter() - tick)
        step += 1
        if on_progress is not None:
            try:
                on_progress(_progress(step, run.config.steps, _mean_loss(losses),
                                      _per_step(times)))
            except Cancelled:
                stopped = True
        stopped = run.any_process(stopped)
    return step, losses, times, stopped


def _character(settings: Settings, user: str, name: str) -> tuple[CharacterStore, Character]:
    store = CharacterStore(settings, user)
    character = store.get(name)
    if not character.crops:
        raise TrainingError(f"{character.name} has no photos to train on; "
                            "add photos to the character first")
    return store, character


def _load_timed(settings: Settings, hardware: Hardware, config: TrainConfig,
                record: bool) -> None:
    """Load the shared pipeline now unless it is loaded, timing it for later estimates."""
    if config.quantize != "none" or is_loaded(settings, hardware):
        return  # a quantized UNet comes with a pipeline of its own, loaded in the chunk
    started = time.perf_counter()
    load_pipeline(settings, hardware)
    if record:
        record_phase_time(settings, hardware, "load", time.perf_counter() - started)


def _load_crops(store: CharacterStore, character: Character) -> list[tuple[Image.Image, Crop]]:
    crops = []
    for crop in character.crops:
        path = store.path(character, crop.file)
        try:
            with Image.open(path) as image:
                crops.append((image.convert("RGB"), crop))
        except (OSError, ValueError) as err:  # its path stays in the server's log
            log.warning("crop %s can't be read: %s", path, err)
            raise TrainingError(f"{character.name}: crop {crop.file} can't be read (the file "
                                "is damaged or missing); delete the character and add its "
                                "photos again") from None
    return crops


def _make_class_images_in_slices(settings: Settings, user: str, kind: str, config: TrainConfig,
                                 on_progress: Optional[ProgressFn]) -> None:
    """Draw the missing class images in ZeroGPU-sized calls, reporting after each."""
    while len(class_image_paths(settings, user, kind, config.class_images)) < config.class_images:
        made = generate_class_images(settings, user, kind, config.class_images,
                                     max_images=images_per_call(settings))
        if on_progress is not None:
            on_progress(Progress(made, config.class_images, "class image"))


def _class_images(settings: Settings, user: str, kind: str, config: TrainConfig, accelerator,
                  on_progress: Optional[ProgressFn]) -> list[Image.Image]:
    """The class images for prior preservation (none without it); the main process draws the
    missing ones (on ZeroGPU, train_character already drew them in calls of their own)."""
    if not config.prior_preservation:
        return []
    have = class_image_paths(settings, user, kind, config.class_images)
    if accelerator.is_main_process and len(have) < config.class_images:
        generate_class_images(settings, user, kind, config.class_images, on_progress=on_progress)
    accelerator.wait_for_everyone()
    return load_class_images(settings, user, kind, config.class_images)


def _prompts(character: Character, config: TrainConfig) -> list[str]:
    """The instance prompt, and the class prompt with prior preservation."""
    prompts = [instance_prompt(character, config.describe)]
    return prompts + [class_prompt(character.kind)] if config.prior_preservation else prompts


@contextlib.contextmanager
def _training_pipeline(settings: Settings, hardware: Hardware,
                       config: TrainConfig) -> Iterator[Any]:
    """The shared pipeline, held (models.pipeline_lock) for the whole chunk so that illustration
    in another thread waits rather than draw with half-trained layers; or a fresh pipeline of
    this chunk's own, whose frozen UNet is quantized (CUDA only), which needs no lock."""
    if config.quantize == "none":
        pipe = load_pipeline(settings, hardware)
        with pipeline_lock():
            yield pipe
        return
    if not hardware.has_gpu:
        raise TrainingError(f"quantize={config.quantize!r} needs a CUDA GPU: bitsandbytes can't "
                            "quantize the UNet on the CPU (diffusers refuses without a GPU); "
                            "use quantize='none' here")
    yield load_quantized_pipeline(settings, hardware, bits=8 if config.quantize == "8bit" else 4)


def _run_key(settings: Settings, hardware: Hardware, character: Character,
             config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint must match to be continued: the config (but its length) with the
    optimizer it resolves to here (a GPU's 8-bit AdamW state can't go on as the CPU's AdamW),
    the model and the character."""
    config_key = {**config.training_key(), "optimizer": optimizer_name(config, hardware)}
    return {"config": config_key, "base_model": settings.base_model,
            "resolution": settings.resolution, "character": character.slug,
            "created": character.created, "photos": character.photos_key,
            "prompts": _prompts(character, config)}


def _resume(run: TrainingRun, folder: Path, key: dict[str, Any],
            config: TrainConfig) -> tuple[int, str]:
    """Load the checkpoint into the run; returns the step to go on from and any warning."""
    try:
        state = load_checkpoint(folder)
    except CorruptCheckpoint as err:
        if not run.accelerator.is_main_process:
            return 0, ""  # under accelerate launch the main process moves it and warns
        log.warning("%s", err)  # the details (path, torch's error) for whoever runs the server
        aside = set_aside(folder)
        return 0, (f"the saved training progress couldn't be read (a damaged checkpoint, kept "
                   f"aside as {aside.name}), so training started over")
    if state is None:
        return 0, ""
    if state.key != key or state.step > config.steps:
        log.info("checkpoint in %s is from another run; starting over", folder)
        return 0, ""
    run.restore(state)
    return state.step, ""


@contextlib.contextmanager
def _explain_out_of_memory(config: TrainConfig, settings: Settings) -> Iterator[None]:
    import torch

    try:
        yield
    except torch.OutOfMemoryError as err:
        raise TrainingError(
            f"the GPU ran out of memory training at {settings.resolution} px with batch_size "
            f"{config.batch_size} and rank {config.rank}; lower batch_size or rank, set "
            "gradient_checkpointing='on', quantize the base UNet (quantize='8bit' or '4bit'), "
            "or lower TALEWEAVER_RESOLUTION") from err


def _steps_per_call(settings: Settings, hardware: Hardware, config: TrainConfig) -> int:
    per_step, _ = step_seconds(settings, hardware, config)
    budget = ZEROGPU_CALL_SECONDS - CALL_OVERHEAD_SECONDS - _finish_seconds(settings, hardware, config)
    return max(1, int(budget / ((per_step or 1.0) * SAFETY)))


def _finish_seconds(settings: Settings, hardware: Hardware, config: TrainConfig) -> float:
    """Time to keep for saving, and the validation image where one is drawn, at the end of a
    run."""
    return (phase_seconds(settings, hardware, "save") or 5.0) + \
        (validation_estimate(settings, hardware, config)[0] or 10.0)


def _progress(step: int, total: int, loss: Optional[float],
              per_step: Optional[float]) -> Progress:
    left = None if per_step is None else (total - step) * per_step
    return Progress(step, total, "step", loss=loss, seconds_left=left)


def _finishing(step: int, losses: list[float], settings: Settings, hardware: Hardware,
               config: TrainConfig) -> Progress:
    """The last report of a run: every step is done, the adapter (and its image) on their way."""
    if not draws_validation(config, hardware.has_gpu):
        return Progress(step, config.steps, "step", loss=_mean_loss(losses),
                        message="saving the adapter", seconds_left=0)
    return Progress(step, config.steps, "step", loss=_mean_loss(losses),
                    message="saving the adapter, then drawing its validation image",
                    seconds_left=validation_estimate(settings, hardware, config)[0])


def _mean_loss(losses: list[float]) -> Optional[float]:
    return statistics.fmean(losses[-LOSS_WINDOW:]) if losses else None


def _per_step(times: list[float]) -> Optional[float]:
    """Median step time, leaving out the first step (allocation, autotuning) when there are more."""
    return statistics.median(times[1:] if len(times) > 1 else times) if times else None
