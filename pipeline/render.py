"""Drawing one page's pictures: the GPU call (one per page on ZeroGPU), with exactly the
page's adapters active, then, for pages with characters, each character's head redrawn with
only its own adapter (compose.second_pass). Arguments and results are small and pickle, since
on ZeroGPU the call runs in a forked worker.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

from PIL import Image

from .adapters import AdapterRef, activate, adapters_held
from .compose import CharacterPass, PassOptions, second_pass
from .hardware import ZEROGPU_CALL_SECONDS, gpu, on_zerogpu
from .models import encode_long_prompt, load_pipeline, pipeline_lock
from .settings import Settings

log = logging.getLogger(__name__)
FACE_SEARCH_SECONDS = 1.0  # finding faces on a first pass (CPU, inside the GPU call)


@dataclass(frozen=True)
class RenderJob:
    """Everything one GPU call needs to draw a page's pictures."""

    prompt: str
    negative: str
    seeds: tuple[int, ...]
    width: int
    height: int
    steps: int
    guidance: float
    adapters: tuple[AdapterRef, ...]  # exactly the adapters active on the first pass
    passes: tuple[CharacterPass, ...] = ()  # the second pass, one per character
    pass_options: Optional[PassOptions] = None


@dataclass(frozen=True)
class Rendered:
    """One picture, the square redrawn for each character by the second pass, and why the
    second pass failed when it did (the picture is then the first pass, kept)."""

    image: Image.Image
    regions: tuple[tuple[str, tuple[int, int, int, int]], ...] = ()
    failed: str = ""


def render_seconds(settings: Settings, job: RenderJob) -> float:
    """The GPU seconds a `render` call asks ZeroGPU for: a bound above SDXL's time on its GPU,
    the second pass included."""
    megapixels = job.width * job.height / 2**20
    per_picture = 2 + 0.15 * job.steps * megapixels
    adapters = {a.name for a in job.adapters} | {p.adapter.name for p in job.passes}
    if job.passes and job.pass_options:
        options = job.pass_options
        side = options.side * options.side / 2**20
        per_picture += FACE_SEARCH_SECONDS + len(job.passes) * (
            1 + 0.15 * options.steps * options.strength * side)
    seconds = 10 + 3 * len(adapters) + len(job.seeds) * per_picture
    return min(float(ZEROGPU_CALL_SECONDS), seconds)


@gpu(duration=render_seconds)
def render(settings: Settings, job: RenderJob,
           on_step: Optional[Callable[[str], None]] = None) -> list[Rendered]:
    """Draw one picture per seed with exactly the job's adapters active, then its second pass
    (one ZeroGPU call). Adapters the pipeline doesn't hold yet are loaded for this call and
    stay cached (settings.adapter_cache; not on ZeroGPU, whose worker forgets them). `on_step` hears each denoising step and pass ("picture
    1 of 2: step 12/30"); leave it out on ZeroGPU, where the call runs in another process."""
    import torch

    pipe = load_pipeline(settings)
    needed = [*job.adapters, *(one.adapter for one in job.passes)]
    tell = on_step or (lambda message: None)
    keep = 0 if on_zerogpu() else settings.adapter_cache  # a ZeroGPU worker forgets them anyway
    with adapters_held(pipe, needed, keep), pipeline_lock():
        drawn = []
        for index, seed in enumerate(job.seeds, start=1):
            which = f"picture {index} of {len(job.seeds)}: " if len(job.seeds) > 1 else ""

            def stepped(_pipe, step, _timestep, tensors, which=which):
                tell(f"{which}step {step + 1}/{job.steps}")
                return tensors

            activate(pipe, job.adapters)
            embeds = encode_long_prompt(pipe, job.prompt, job.negative)
            image = pipe(**embeds, width=job.width, height=job.height,
                         num_inference_steps=job.steps, guidance_scale=job.guidance,
                         generator=torch.Generator("cpu").manual_seed(seed),
                         callback_on_step_end=stepped).images[0]
            drawn.append(_second_pass(pipe, image, job, seed, tell, which)
                         if job.passes and job.pass_options else Rendered(image))
        return drawn


def _second_pass(pipe, first: Image.Image, job: RenderJob, seed: int,
                 tell: Callable[[str], None], which: str) -> Rendered:
    """The second pass over a first pass; if it fails, the first pass is kept and says why."""
    tell(f"{which}redrawing {', '.join(one.name for one in job.passes)}")
    try:
        image, regions = second_pass(pipe, first, job.passes, job.negative, job.pass_options,
                                     seed)
    except Exception as err:  # noqa: BLE001 - the first pass is worth keeping whatever broke
        log.exception("second pass failed; keeping the first pass")
        activate(pipe, job.adapters)
        return Rendered(first, failed=type(err).__name__)  # details in the log only
    return Rendered(image, tuple(regions))
