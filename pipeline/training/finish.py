"""The end of a training run: the adapter folder, written whole or not at all.

    <character>/adapter/pytorch_lora_weights.safetensors, kohya_lora.safetensors
    <character>/adapter/train_config.json   the TrainingRecord (config, base model, trigger)
    <character>/adapter/validation.png      the character drawn by the adapter, if it passed
                                            the picture safety check (safety.py)

`finished` says whether a folder holds the result of exactly this config, model and trigger.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from PIL import Image

from ..adapter_files import TRAIN_CONFIG, VALIDATION_IMAGE
from ..characters import Character, CharacterStore
from ..models import ModelUnavailableError
from ..safety import draw_safely
from ..settings import Settings
from ..store import atomic_write_json, read_json
from .config import TrainConfig, TrainingRecord
from .data import instance_prompt
from .lora_files import save_adapter
from .run import TrainingRun

log = logging.getLogger(__name__)
VALIDATION_PROMPT = "{token} reading a book in a garden"


def validation_image(pipe, character: Character, config: TrainConfig, resolution: int,
                     seed: Optional[int] = None) -> Image.Image:
    """The character drawn by the pipeline as it stands (with the trained layers), with the
    config's seed (or `seed`)."""
    import torch

    prompt = VALIDATION_PROMPT.format(token=character.token_phrase)
    generator = torch.Generator().manual_seed(config.seed if seed is None else seed)
    return pipe(prompt, num_inference_steps=config.validation_steps, height=resolution,
                width=resolution, generator=generator).images[0]


def write_adapter(store: CharacterStore, character: Character, run: TrainingRun,
                   settings: Settings, config: TrainConfig) -> str:
    """Write the adapter folder under a temporary name, then swap it in whole. The validation
    image is kept only if it passes the picture safety check (redrawn with other seeds if
    not); returns a warning when there is none."""
    for module in run.modules.values():
        module.eval()
    warning = ""
    with replaced_dir(store.adapter_dir(character)) as folder:
        save_adapter(folder, run.modules, config)
        try:
            [drawn] = draw_safely(settings, lambda seeds: [
                validation_image(run.pipe, character, config, settings.resolution, seed)
                for seed in seeds], [config.seed])
        except ModelUnavailableError as err:
            log.error("no validation image: %s", err)
            drawn = None
        if drawn is not None and drawn.image is not None:
            drawn.image.save(folder / VALIDATION_IMAGE)
        else:
            warning = ("no validation image: the picture safety check "
                       + ("isn't available" if drawn is None else "flagged every try"))
        atomic_write_json(folder / TRAIN_CONFIG, record(settings, character, config).to_dict())
    return warning


def record(settings: Settings, character: Character, config: TrainConfig) -> TrainingRecord:
    return TrainingRecord(base_model=settings.base_model, resolution=settings.resolution,
                          trigger=character.trigger,
                          instance_prompt=instance_prompt(character, config.describe),
                          validation_prompt=VALIDATION_PROMPT.format(token=character.token_phrase),
                          config=config)


def finished(settings: Settings, store: CharacterStore, character: Character,
              config: TrainConfig) -> bool:
    """True when the adapter folder holds the result of exactly this config, on this base model
    at this resolution, for this trigger: any change (TALEWEAVER_BASE_MODEL, say) trains anew."""
    try:
        saved = TrainingRecord.from_dict(read_json(store.adapter_dir(character) / TRAIN_CONFIG))
    except ValueError:  # no record, an unreadable one (StoreError), or one of another shape
        return False
    wanted = record(settings, character, config)
    return (saved.config, saved.base_model, saved.resolution, saved.trigger) == \
        (wanted.config, wanted.base_model, wanted.resolution, wanted.trigger)


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


