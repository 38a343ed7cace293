"""What each kind of GPU work costs on this machine, written where the app's estimates read it.

    python bench/gpu_budget.py                           # TALEWEAVER_* settings; on a GPU: SDXL
    python bench/gpu_budget.py --model /tmp/tiny --styles watercolor pastel   # the CPU, quickly

Measures, on whatever device the settings choose: loading the base pipeline; seconds per
training step (the `person` preset: a crop and a class image per step, rank 32) at 768 and
1024 px; one guided inference step per megapixel (a 1024 px picture of 30 steps, divided); the
validation image (its default size and steps); loading one character's adapter and switching
to adapters already loaded; and one picture of a page in each style (its size, steps and
guidance, with the adapter active; the second pass over each head is not included). Each figure
is the median of --repeats after a warm-up. They go into <data dir>/step_times.json through
pipeline/training/estimate.py, under this hardware and base model: the training step
(record_step_time; the one at TALEWEAVER_RESOLUTION when that is 768 or 1024, else at 1024),
the guided inference step (record_image_time) and the pipeline's load (record_phase_time), so
the training and drawing estimates use them from then on; the other figures are printed.
Without a GPU and without a local base model it builds the tiny test model (the figures are
then the tiny model's, under its folder's name, for CPU demos).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.train_speed import synthetic_crops  # noqa: E402
from pipeline import models  # noqa: E402
from pipeline.adapters import AdapterRef, activate, adapters_held  # noqa: E402
from pipeline.characters import Character  # noqa: E402
from pipeline.hardware import detect, use_cpu_threads  # noqa: E402
from pipeline.render import RenderJob, render  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.styles import load_styles  # noqa: E402
from pipeline.training.config import TrainConfig, preset_config  # noqa: E402
from pipeline.training.estimate import (record_image_time, record_phase_time,  # noqa: E402
                                        record_step_time)
from pipeline.training.lora_files import lora_layers, save_adapter  # noqa: E402
from pipeline.training.run import make_accelerator, open_run  # noqa: E402
from pipeline.training.finish import validation_image  # noqa: E402

SCENE = "ohwx girl reading a book under a tree in a garden"
IMAGE_STEPS = 30


def median_seconds(fn, repeats: int, sync) -> float:
    """Median wall time of `fn()` over `repeats` calls after one warm-up call."""
    times = []
    for turn in range(repeats + 1):
        sync()
        tick = time.perf_counter()
        fn()
        sync()
        if turn:
            times.append(time.perf_counter() - tick)
    return statistics.median(times)


def pipeline_load(settings: Settings) -> float:
    """Seconds to load the base pipeline (the process's first load: the OS may cache files)."""
    models.clear_cache()
    tick = time.perf_counter()
    models.load_pipeline(settings)
    return time.perf_counter() - tick


def step_seconds(settings: Settings, resolution: int, config: TrainConfig, repeats: int,
                 sync) -> float:
    """Median seconds of one training step at `resolution`, class images included."""
    hardware = detect(settings)
    pipe = models.load_pipeline(settings)
    crops = synthetic_crops(4, resolution)
    class_images = [image for image, _ in synthetic_crops(2, resolution)]
    prompts = ["a photo of ohwx girl", "a photo of a girl"]
    with open_run(pipe, make_accelerator(hardware), hardware, config, crops, class_images,
                  prompts, resolution) as run:
        steps = iter(range(10_000))
        return median_seconds(lambda: run.step(next(steps)).item(), repeats, sync)


def make_adapter(settings: Settings, config: TrainConfig, folder: Path) -> Path:
    """A real adapter folder (fresh LoRA layers of the preset's rank, saved as training does)."""
    pipe = models.load_pipeline(settings)
    with models.pipeline_lock(), lora_layers(pipe, config, gradient_checkpointing=False) as modules:
        save_adapter(folder, modules, config)
    return folder


def adapter_seconds(settings: Settings, folder: Path, repeats: int, sync) -> tuple[float, float]:
    """Seconds to load one adapter into the pipeline, and to switch between loaded ones."""
    pipe = models.load_pipeline(settings)
    loads = []
    for turn in range(repeats + 1):
        ref = AdapterRef(f"bench-{turn}", str(folder), 1.0)
        sync()
        tick = time.perf_counter()
        with adapters_held(pipe, [ref], keep=0):
            sync()
            if turn:
                loads.append(time.perf_counter() - tick)
    a, b = AdapterRef("bench-a", str(folder), 1.0), AdapterRef("bench-b", str(folder), 0.8)
    with adapters_held(pipe, [a, b], keep=0):
        switch = iter([[a], [b]] * (repeats + 1))
        return statistics.median(loads), median_seconds(lambda: activate(pipe, next(switch)),
                                                        repeats, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="base model (default: TALEWEAVER_BASE_MODEL; without a "
                                        "GPU and a local model, the tiny test model)")
    parser.add_argument("--data-dir", type=Path, help="where to write step_times.json "
                                                      "(default: TALEWEAVER_DATA_DIR)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--styles", nargs="*", help="the styles to draw (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print, write nothing")
    args = parser.parse_args()

    import torch

    settings = Settings.from_env()
    settings = dataclasses.replace(settings, **{k: v for k, v in (
        ("base_model", args.model), ("data_dir", args.data_dir)) if v is not None})
    use_cpu_threads(settings)
    hardware = detect(settings)
    if not hardware.has_gpu and not Path(settings.base_model).is_dir():
        from pipeline.testing import save_tiny_model

        tiny = settings.data_dir / "bench-tiny-model"
        if not tiny.is_dir():
            save_tiny_model(tiny)
        settings = dataclasses.replace(settings, base_model=str(tiny), vae="")
        print(f"no GPU: measuring the tiny test model (TALEWEAVER_BASE_MODEL={tiny})")
    sync = torch.cuda.synchronize if hardware.device.startswith("cuda") else (lambda: None)
    person = preset_config("person", 8)
    figures: dict[str, float] = {}
    step_times: dict[int, float] = {}

    figures["pipeline load"] = pipeline_load(settings)
    for resolution in (768, 1024):
        step_times[resolution] = step_seconds(settings, resolution, person, args.repeats, sync)
    pipe = models.load_pipeline(settings)
    big = lambda: pipe(SCENE, num_inference_steps=IMAGE_STEPS, width=1024, height=1024,  # noqa: E731
                       generator=torch.Generator().manual_seed(0))
    picture = median_seconds(big, args.repeats, sync)
    figures[f"guided step per megapixel ({IMAGE_STEPS} at 1024 px)"] = \
        picture / IMAGE_STEPS / 1.048576
    character = Character(name="Mia", slug="mia", kind="girl", description="", trigger="ohwx",
                          crops=(), created="")
    figures["validation image"] = median_seconds(
        lambda: validation_image(pipe, character, person, settings.resolution), args.repeats, sync)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_adapter(settings, person, Path(tmp) / "adapter")
        figures["adapter load"], figures["adapter switch"] = adapter_seconds(
            settings, folder, args.repeats, sync)
        ref = AdapterRef("bench-page", str(folder), 1.0)
        with adapters_held(pipe, [ref], keep=0):
            for name, style in load_styles().items():
                if args.styles and name not in args.styles:
                    continue
                job = RenderJob(prompt=style.prompt(SCENE), negative=style.negative, seeds=(1,),
                                width=style.width, height=style.height, steps=style.steps,
                                guidance=style.guidance, adapters=(ref,))
                figures[f"page {name}"] = median_seconds(lambda: render(settings, job),
                                                      args.repeats, sync)

    print(f"{hardware.name} ({hardware.device}, {hardware.dtype}) · {settings.base_model} · "
          f"torch threads {torch.get_num_threads()} · median of {args.repeats} after a warm-up")
    for resolution, seconds in step_times.items():
        print(f"  training step at {resolution} px (person: crop + class image, rank 32): "
              f"{seconds:8.3f} s")
    for what, seconds in figures.items():
        print(f"  {what:<28} {seconds:8.3f} s")
    if args.dry_run:
        return
    recorded = settings.resolution if settings.resolution in step_times else 1024
    record_step_time(dataclasses.replace(settings, resolution=recorded), hardware, person,
                     step_times[recorded])
    record_image_time(settings, hardware, picture, IMAGE_STEPS, 1024, 1024)
    record_phase_time(settings, hardware, "load", figures["pipeline load"])
    print(f"written to {settings.data_dir / 'step_times.json'}")


if __name__ == "__main__":
    main()
