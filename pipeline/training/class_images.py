"""Class images for prior preservation: what the base model draws for "a photo of a girl".

Made once per user and kind, in the user's own folder, and reused by every character of that
kind: <user>/class_images/<kind slug>/000.png, 001.png, ... Image i always comes from seed i,
so a set made across several short GPU calls is the same as one made in a single call. On the
CPU they are drawn smaller and in fewer steps (estimate.class_image_plan); made_with.json says
with which model, size and steps, and a set made otherwise (the demo model, the CPU) is drawn
again rather than teach another model's pictures.
"""
from __future__ import annotations

import io
import itertools
import logging
import statistics
import time
from pathlib import Path
from typing import Optional

from PIL import Image

from ..hardware import ZEROGPU_CALL_SECONDS, detect, gpu
from ..adapters import require_no_adapters
from ..models import load_pipeline, pipeline_lock
from ..progress import Progress, ProgressFn
from ..settings import Settings
from ..store import (StoreError, atomic_write_bytes, atomic_write_json, inside, read_json,
                     remove_tree, slugify, user_dir)
from .config import CLASS_IMAGE_GUIDANCE, TrainConfig
from .data import class_prompt
from .estimate import (CALL_OVERHEAD_SECONDS, SAFETY, class_image_plan, image_seconds,
                       record_image_time)
from .run import TrainingError

log = logging.getLogger(__name__)
MADE_WITH = "made_with.json"


def class_image_dir(settings: Settings, user: str, kind: str) -> Path:
    """The user's folder of class images for this kind ("Guinea Pig" -> class_images/guinea-pig)."""
    return inside(user_dir(settings, user), "class_images", slugify(kind))


def class_image_paths(settings: Settings, user: str, kind: str, count: int) -> list[Path]:
    """The first `count` class images of this kind that already exist, in order (none when
    they were made with another model, size or steps than would be used here)."""
    folder = class_image_dir(settings, user, kind)
    try:
        made_with = read_json(folder / MADE_WITH)
    except StoreError:  # none yet, or a set made before the record was kept: used as it is
        made_with = None
    if made_with is not None and made_with != _made_with(settings):
        return []
    return list(itertools.takewhile(Path.is_file, (folder / f"{i:03d}.png" for i in range(count))))


def _made_with(settings: Settings) -> dict:
    side, steps = class_image_plan(settings, detect(settings))
    return {"base_model": settings.base_model, "size": side, "steps": steps}


def load_class_images(settings: Settings, user: str, kind: str, count: int) -> list[Image.Image]:
    """The first `count` class images, at the training resolution."""
    size = (settings.resolution, settings.resolution)
    images = []
    for path in class_image_paths(settings, user, kind, count):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except (OSError, ValueError) as err:  # damaged: it goes, and is drawn again next time
            log.warning("damaged class image %s removed: %s", path, err)
            path.unlink(missing_ok=True)
            raise TrainingError(f"a saved picture of {kind!r} for prior preservation was "
                                "damaged; it was removed and is drawn again when you start "
                                "training again") from None
        images.append(image if image.size == size else image.resize(size, Image.LANCZOS))
    return images


def images_per_call(settings: Settings) -> int:
    """How many class images fit in one ZeroGPU call."""
    seconds = _image_seconds(settings)
    return max(1, int((ZEROGPU_CALL_SECONDS - CALL_OVERHEAD_SECONDS) / (seconds * SAFETY)))


def _image_seconds(settings: Settings) -> float:
    """Seconds per class image; while nothing is known, a whole call (so one image per call)."""
    hardware = detect(settings)
    side, steps = class_image_plan(settings, hardware)
    seconds = image_seconds(settings, hardware, TrainConfig(), steps, side)
    return ZEROGPU_CALL_SECONDS if seconds is None else seconds


def _duration(settings: Settings, user: str, kind: str, count: int,
              max_images: Optional[int] = None, on_progress: Optional[ProgressFn] = None) -> float:
    missing = count - len(class_image_paths(settings, user, kind, count))
    todo = missing if max_images is None else min(missing, max_images)
    return min(ZEROGPU_CALL_SECONDS, CALL_OVERHEAD_SECONDS + todo * _image_seconds(settings) * SAFETY)


@gpu(duration=_duration)
def generate_class_images(settings: Settings, user: str, kind: str, count: int,
                          max_images: Optional[int] = None,
                          on_progress: Optional[ProgressFn] = None) -> int:
    """Make the missing class images (at most `max_images` in this call); returns how many exist.

    Each image is saved as soon as it is made, so an interrupted call loses at most one. Each is
    drawn holding models.pipeline_lock() by the base model alone: while a book holds adapters on
    the shared pipeline this refuses (models.PipelineInUseError) rather than save their look.
    Their drawing time is recorded for later estimates.
    """
    import torch

    done = len(class_image_paths(settings, user, kind, count))
    todo = range(done, count if max_images is None else min(count, done + max_images))
    if not todo:
        return done
    hardware = detect(settings)
    pipe = load_pipeline(settings, hardware)
    folder = class_image_dir(settings, user, kind)
    side, steps = class_image_plan(settings, hardware)
    prompt = class_prompt(kind)
    times: list[float] = []
    for index in todo:
        started = time.perf_counter()
        with pipeline_lock():
            require_no_adapters(pipe, "drawing class images")
            image = pipe(prompt, num_inference_steps=steps, guidance_scale=CLASS_IMAGE_GUIDANCE,
                         height=side, width=side,
                         generator=torch.Generator().manual_seed(index)).images[0]
        if index == 0:  # a set made otherwise goes, with its record
            remove_tree(folder)
            atomic_write_json(folder / MADE_WITH, _made_with(settings))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        atomic_write_bytes(folder / f"{index:03d}.png", buffer.getvalue())
        times.append(time.perf_counter() - started)
        if on_progress is not None:
            on_progress(Progress(index + 1, count, "class image",
                                 message=f"drawing '{prompt}' for prior preservation",
                                 seconds_left=statistics.median(times) * (todo[-1] - index)))
    # the mean (after the first, which warms up): what the clock sees, slow ones included
    record_image_time(settings, hardware, statistics.fmean(times[1:] or times), steps, side, side)
    return len(class_image_paths(settings, user, kind, count))
