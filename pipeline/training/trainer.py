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
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from PIL import Image

from ..adapter_files import CHECKPOINT_DIR, TRAIN_CONFIG, VALIDATION_IMAGE
from ..characters import Character, CharacterStore, Crop
from ..hardware import ZEROGPU_CALL_SECONDS, Hardware, detect, gpu, on_zerogpu
from ..models import load_pipeline, load_quantized_pipeline, pipeline_lock
from ..progress import Progress, ProgressFn
from ..settings import Settings
from ..store import atomic_write_json, atomic_writer, read_json
from .checkpoint import (CorruptCheckpoint, clear_checkpoint, load_checkpoint, save_checkpoint,
                         saved_progress, set_aside)
from .class_images import (class_image_paths, generate_class_images, images_per_call,
                           load_class_images)
from .config import TrainConfig, TrainingRecord, draws_validation, validation_side
from .data import class_prompt, instance_prompt
from .estimate import (CALL_OVERHEAD_SECONDS, SAFETY, Estimate, estimate_training, image_seconds,
                       record_step_time, step_seconds, validation_image_steps)
from .lora_files import save_adapter
from .run import TrainingError, TrainingRun, make_accelerator, open_run, optimizer_name

log = logging.getLogger(__name__)
VALIDATION_PROMPT = "a close-up portrait of {token} reading a book in a garden"  # a big face to score
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
    done = saved_progress(store.path(character, CHECKPOINT_DIR),
                          _run_key(settings, detect(settings), character, config))
    if _finished(settings, store, character, config):
        done = config.steps
    return estimate_training(settings, config, steps_done=done, class_images_missing=missing)


def train_character(settings: Settings, user: str, name: str, config: TrainConfig, *,
                    chunk_steps: Optional[int] = None, max_chunks: Optional[int] = None,
                    on_progress: Optional[ProgressFn] = None) -> TrainResult:
    """Train (or go on training) a character's adapter until done, or for `max_chunks` chunks.

    `chunk_steps` bounds each chunk; by default one chunk on a dedicated GPU or the CPU, and
    what fits in one ZeroGPU call there.
    """
    started = time.monotonic()
    store, character = _character(settings, user, name)
    hardware = detect(settings)
    sliced = on_zerogpu()
    if config.prior_preservation and sliced:
        _make_class_images_in_slices(settings, user, character.kind, config, on_progress)
    warnings: list[str] = []
    chunks, result = 0, None
    if not _finished(settings, store, character, config):
        while max_chunks is None or chunks < max_chunks:
            steps = chunk_steps or (_steps_per_call(settings, hardware, config) if sliced
                                    else config.steps)
            result = train_chunk(settings, user, name, config, steps,
                                 on_progress=None if sliced else on_progress)
            chunks += 1
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


def chunk_duration(settings: Settings, user: str, name: str, config: TrainConfig, max_steps: int,
                   on_progress: Optional[ProgressFn] = None) -> float:
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
                on_progress: Optional[ProgressFn] = None) -> ChunkResult:
    """Train at most `max_steps` more steps (less if ZeroGPU's time runs out), then checkpoint.

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
    class_images = _class_images(settings, user, character.kind, config, accelerator, on_progress)
    folder = store.path(character, CHECKPOINT_DIR)
    key = _run_key(settings, hardware, character, config)
    with _training_pipeline(settings, hardware, config) as pipe, \
            _explain_out_of_memory(config, settings), \
            open_run(pipe, accelerator, hardware, config, crops, class_images,
                     _prompts(character, config), settings.resolution) as run:
        start, warning = _resume(run, folder, key, config)
        step, losses, times = _train_steps(run, start, min(config.steps, start + max_steps),
                                           deadline, on_progress)
        finished = step >= config.steps
        if accelerator.is_main_process:
            if step > start and not finished:
                save_checkpoint(folder, run.state(step, key), config.steps)
            if len(times) > 1:
                record_step_time(settings, hardware, config, _per_step(times))
            if finished:
                if on_progress is not None:
                    on_progress(_finishing(step, losses, settings, hardware, config))
                _write_adapter(store, character, run, settings, config)
                clear_checkpoint(folder)
                if draws_validation(config, hardware.has_gpu):
                    _write_validation_image(store, character, run, settings, config)
        accelerator.wait_for_everyone()
    return ChunkResult(step=step, total=config.steps, loss=_mean_loss(losses),
                       seconds_per_step=_per_step(times), done=step >= config.steps,
                       warning=warning)


def _train_steps(run: TrainingRun, start: int, end: int, deadline: Optional[float],
                 on_progress: Optional[ProgressFn]) -> tuple[int, list[float], list[float]]:
    """Steps `start` to `end` (fewer if the next would pass the deadline): the step reached,
    the losses and the seconds of each step."""
    step, losses, times = start, [], []
    while step < end and not (deadline and times and time.monotonic() + times[-1] > deadline):
        tick = time.perf_counter()
        losses.append(run.mean_across_processes(run.step(step)))
        times.append(time.perf_counter() - tick)
        step += 1
        if on_progress is not None:
            on_progress(_progress(step, run.config.steps, _mean_loss(losses), _per_step(times)))
    return step, losses, times


def validation_image(pipe, character: Character, config: TrainConfig, resolution: int) -> Image.Image:
    """The character drawn by the pipeline as it stands (with the trained layers), fixed seed,
    at the config's validation size (at most the training `resolution`) and steps."""
    import torch

    prompt = VALIDATION_PROMPT.format(token=character.token_phrase)
    side = validation_side(config, resolution)
    return pipe(prompt, num_inference_steps=config.validation_steps, height=side, width=side,
                generator=torch.Generator().manual_seed(config.seed)).images[0]


def _character(settings: Settings, user: str, name: str) -> tuple[CharacterStore, Character]:
    store = CharacterStore(settings, user)
    character = store.get(name)
    if not character.crops:
        raise TrainingError(f"{character.name} has no photos to train on; "
                            "add photos to the character first")
    return store, character


def _load_crops(store: CharacterStore, character: Character) -> list[tuple[Image.Image, Crop]]:
    crops = []
    for crop in character.crops:
        path = store.path(character, crop.file)
        try:
            with Image.open(path) as image:
                crops.append((image.convert("RGB"), crop))
        except (OSError, ValueError) as err:
            raise TrainingError(f"{character.name}: crop {crop.file} can't be read ({err}); "
                                "delete the character and add its photos again") from err
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
            "created": character.created}


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


def _write_adapter(store: CharacterStore, character: Character, run: TrainingRun,
                   settings: Settings, config: TrainConfig) -> None:
    """Write the adapter folder under a temporary name, then swap it in whole (a previous
    adapter's validation image goes with it)."""
    for module in run.modules.values():
        module.eval()
    with _replaced_dir(store.adapter_dir(character)) as folder:
        save_adapter(folder, run.modules, config)
        atomic_write_json(folder / TRAIN_CONFIG, _record(settings, character, config).to_dict())


def _write_validation_image(store: CharacterStore, character: Character, run: TrainingRun,
                            settings: Settings, config: TrainConfig) -> None:
    """Draw the validation image with the trained layers still in place (no adapter to load)
    and put it beside the saved adapter."""
    image = validation_image(run.pipe, character, config, settings.resolution)
    with atomic_writer(store.adapter_dir(character) / VALIDATION_IMAGE) as handle:
        image.save(handle, format="PNG")


def _record(settings: Settings, character: Character, config: TrainConfig) -> TrainingRecord:
    return TrainingRecord(base_model=settings.base_model, resolution=settings.resolution,
                          trigger=character.trigger,
                          instance_prompt=instance_prompt(character, config.describe),
                          validation_prompt=VALIDATION_PROMPT.format(token=character.token_phrase),
                          config=config)


def _finished(settings: Settings, store: CharacterStore, character: Character,
              config: TrainConfig) -> bool:
    """True when the adapter folder holds the result of exactly this config, on this base model
    at this resolution, for this trigger: any change (TALEWEAVER_BASE_MODEL, say) trains anew."""
    try:
        saved = TrainingRecord.from_dict(read_json(store.adapter_dir(character) / TRAIN_CONFIG))
    except ValueError:  # no record, an unreadable one (StoreError), or one of another shape
        return False
    wanted = _record(settings, character, config)
    return saved.config.same_adapter(wanted.config) and \
        (saved.base_model, saved.resolution, saved.trigger) == \
        (wanted.base_model, wanted.resolution, wanted.trigger)


@contextlib.contextmanager
def _replaced_dir(final: Path) -> Iterator[Path]:
    """Yield a new temporary folder; on success it replaces `final` (the old one is removed)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield new
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            os.rename(final, old)
        os.rename(new, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


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
    """Time to keep for saving, and the validation image where one is drawn, at the end of a run."""
    if not draws_validation(config, hardware.has_gpu):
        return 5
    return 5 + (_validation_seconds(settings, hardware, config) or 10.0)


def _validation_seconds(settings: Settings, hardware: Hardware,
                        config: TrainConfig) -> Optional[float]:
    """Seconds of the validation image (its steps, at its smaller size), when known."""
    return image_seconds(settings, hardware, config,
                         validation_image_steps(settings, hardware, config))


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
                    seconds_left=_validation_seconds(settings, hardware, config))


def _mean_loss(losses: list[float]) -> Optional[float]:
    return statistics.fmean(losses[-LOSS_WINDOW:]) if losses else None


def _per_step(times: list[float]) -> Optional[float]:
    """Median step time, leaving out the first step (allocation, autotuning) when there are more."""
    return statistics.median(times[1:] if len(times) > 1 else times) if times else None
