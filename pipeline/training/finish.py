"""The end of a training run: the adapter folder, written whole or not at all.

    <character>/adapter/pytorch_lora_weights.safetensors, kohya_lora.safetensors
    <character>/adapter/train_config.json   the TrainingRecord (config, base model, trigger)
    <character>/adapter/validation.png      the character drawn by the trained layers, put
                                            there after the adapter is saved, where asked
                                            (config.validation) and if it passed the picture
                                            safety check (safety.py)

`finished` says whether a folder holds the result of exactly this config, model and character
as it is now; `adapter_out_of_date` says what changed since.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

from PIL import Image

from ..adapter_files import TRAIN_CONFIG, VALIDATION_IMAGE
from ..characters import Character, CharacterStore
from ..hardware import Hardware
from ..models import ModelUnavailableError
from ..safety import draw_safely
from ..settings import Settings
from ..store import atomic_write_json, atomic_writer, read_json
from .config import TrainConfig, TrainingRecord, validation_side
from .data import instance_prompt
from .estimate import record_image_time, record_phase_time
from .lora_files import save_adapter
from .run import TrainingRun

log = logging.getLogger(__name__)
VALIDATION_PROMPT = "a close-up portrait of {token} reading a book in a garden"  # a big face


def validation_image(pipe, character: Character, config: TrainConfig, resolution: int,
                     seed: Optional[int] = None) -> Image.Image:
    """The character drawn by the pipeline as it stands (with the trained layers), with the
    config's seed (or `seed`), at the config's validation size (at most the training
    `resolution`) and steps."""
    import torch

    prompt = VALIDATION_PROMPT.format(token=character.token_phrase)
    side = validation_side(config, resolution)
    generator = torch.Generator().manual_seed(config.seed if seed is None else seed)
    return pipe(prompt, num_inference_steps=config.validation_steps, height=side, width=side,
                generator=generator).images[0]


def write_adapter(store: CharacterStore, character: Character, run: TrainingRun,
                  settings: Settings, hardware: Hardware, config: TrainConfig) -> None:
    """Write the adapter folder under a temporary name, then swap it in whole (a previous
    adapter's validation image goes with it); the time it took goes to the estimates."""
    for module in run.modules.values():
        module.eval()
    started = time.perf_counter()
    with replaced_dir(store.adapter_dir(character)) as folder:
        save_adapter(folder, run.modules, config)
        atomic_write_json(folder / TRAIN_CONFIG, record(settings, character, config).to_dict())
    record_phase_time(settings, hardware, "save", time.perf_counter() - started)


def write_validation_image(store: CharacterStore, character: Character, run: TrainingRun,
                           settings: Settings, hardware: Hardware, config: TrainConfig) -> str:
    """Draw the validation image with the trained layers still in place (no adapter to load)
    and put it beside the saved adapter, if it passes the picture safety check (redrawn with
    other seeds if not); returns a warning when there is none."""
    side = validation_side(config, settings.resolution)
    drawing = time.perf_counter()
    try:
        [drawn] = draw_safely(settings, lambda seeds: [
            validation_image(run.pipe, character, config, settings.resolution, seed)
            for seed in seeds], [config.seed])
    except ModelUnavailableError as err:
        log.error("no validation image: %s", err)
        return "no validation image: the picture safety check isn't available"
    if drawn.image is None:
        return "no validation image: the picture safety check flagged every try"
    record_image_time(settings, hardware, (time.perf_counter() - drawing) / drawn.tries,
                      config.validation_steps, side, side)
    with atomic_writer(store.adapter_dir(character) / VALIDATION_IMAGE) as handle:
        drawn.image.save(handle, format="PNG")
    return ""


def record(settings: Settings, character: Character, config: TrainConfig) -> TrainingRecord:
    return TrainingRecord(base_model=settings.base_model, resolution=settings.resolution,
                          trigger=character.trigger,
                          instance_prompt=instance_prompt(character, config.describe),
                          validation_prompt=VALIDATION_PROMPT.format(token=character.token_phrase),
                          config=config, photos=character.photos_key)


def finished(settings: Settings, store: CharacterStore, character: Character,
             config: TrainConfig) -> bool:
    """True when the adapter folder holds the result of exactly this config, on this base model
    at this resolution, for this character as it is now: any change (TALEWEAVER_BASE_MODEL,
    added photos, a new kind) trains anew."""
    saved = _saved_record(store, character)
    return saved is not None and saved.config.same_adapter(config) and \
        not _changes(saved, record(settings, character, config))


def adapter_out_of_date(settings: Settings, user: str, name: str) -> str:
    """Why a character's trained adapter no longer matches it ("" when it does, or when there
    is no adapter): photos added, its kind (or, when the prompt carries it, its look) changed,
    another base model or resolution. Training again makes a new one."""
    store = CharacterStore(settings, user)
    character = store.get(name)
    saved = _saved_record(store, character)
    if saved is None:
        return ""
    return "; ".join(_changes(saved, record(settings, character, saved.config)))


def _saved_record(store: CharacterStore, character: Character) -> Optional[TrainingRecord]:
    try:
        return TrainingRecord.from_dict(read_json(store.adapter_dir(character) / TRAIN_CONFIG))
    except ValueError:  # no record, an unreadable one (StoreError), or one of another shape
        return None


def _changes(saved: TrainingRecord, wanted: TrainingRecord) -> list[str]:
    """What differs between how an adapter was trained and how it would be trained now."""
    changes = []
    if saved.photos and saved.photos != wanted.photos:  # "": a record from before it was kept
        before, now = saved.photos.split(":")[0], wanted.photos.split(":")[0]
        changes.append(f"its photos changed since it was trained ({before} then, {now} now)")
    if (saved.trigger, saved.instance_prompt) != (wanted.trigger, wanted.instance_prompt):
        changes.append("its kind (or the look its training used) changed since it was trained")
    if (saved.base_model, saved.resolution) != (wanted.base_model, wanted.resolution):
        changes.append("it was trained for another base model or resolution")
    return changes


@contextlib.contextmanager
def replaced_dir(final: Path) -> Iterator[Path]:
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


