"""A new user's first hour on a CPU, timed: a person trained with the default preset, then a
page drawn at the size the app uses without a GPU, on the tiny demo model; and what the
training estimate said before anything was timed and after this run timed every phase.

    python bench/first_hour.py                       # 8 photos: 640 steps, 24 class images, 128 px
    python bench/first_hour.py --steps 100 --threads 1

Everything runs through the use cases the app calls (actions.training.train,
actions.drawing.illustrate) in a fresh temporary data folder. Prints each phase as measured
(step_times.json), the wall time, the estimates, the page time, and the machine's load (the
figures are only comparable on an idle machine).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.progress import format_seconds  # noqa: E402
from pipeline.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8, help="crops of the person (default 8)")
    parser.add_argument("--resolution", type=int, default=128, help="training crops (px)")
    parser.add_argument("--steps", type=int, default=0, help="0: the person preset's")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()

    import torch

    from pipeline.actions import books, drawing, training
    from pipeline.actions.system import make_tiny_model
    from pipeline.characters import CharacterStore
    from pipeline.training.estimate import STEP_TIMES_FILE

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="first-hour-"))
    model, safety = make_tiny_model(root / "tiny")
    settings = Settings(base_model=str(model), vae="", safety_model=str(safety),
                        data_dir=root / "data", device="cpu", resolution=args.resolution)
    options = {"steps": args.steps} if args.steps else {}
    for user in ("first", "second"):
        CharacterStore(settings, user).create("Mia", "girl", "", "ohwx",
                                              _crops(args.photos, args.resolution))
    before = training.plan_training(settings, "first", "Mia", "person", options)
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load "
          f"average {os.getloadavg()[0]:.1f} at the start")
    print(f"estimate before anything was timed: {before.estimate.describe()}")

    started = time.perf_counter()
    trained = training.train(settings, "first", "Mia", "person", options, token=None,
                             publish=False)
    wall = time.perf_counter() - started
    print(f"trained {trained.result.step} steps with "
          f"{before.estimate.class_images_to_make} class images in {format_seconds(wall)} "
          f"({wall:.1f} s)")
    for key, value in sorted(_read(settings.data_dir / STEP_TIMES_FILE).items()):
        print(f"  measured {key.split(' | ')[-1]}: {value:.4g}")
    after = training.plan_training(settings, "second", "Mia", "person", options)
    print(f"estimate for the same run now (another user, no class images yet): "
          f"{after.estimate.describe()}")
    print(f"  estimate {after.estimate.seconds:.1f} s against {wall:.1f} s measured "
          f"({after.estimate.seconds / wall:.2f}x)")

    book = books.new_book(settings, "first", "First", "Mia on a swing.", seed=1)
    used = drawing.drawing_in_force(settings, book.style)
    started = time.perf_counter()
    drawing.illustrate(settings, "first", book.id)
    page = time.perf_counter() - started
    print(f"a page at the CPU's {used.width}x{used.height} in {used.steps} steps (the first: "
          f"with loading the adapter): {page:.1f} s")
    started = time.perf_counter()
    drawing.redraw_page(settings, "first", book.id, 1)
    print(f"the same page again: {time.perf_counter() - started:.1f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def _crops(count: int, size: int):
    """Synthetic square crops with photo geometry, as the store keeps them."""
    import numpy as np
    from PIL import Image

    from pipeline.characters import Crop

    rng = np.random.default_rng(0)
    return [(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
             Crop(file="", original_size=(2 * size, 2 * size), crop_box=(0, 0, size, size)))
            for _ in range(count)]


def _read(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


if __name__ == "__main__":
    main()
