"""Likeness scoring speed on ONE CPU core: seconds per page, and what each detector costs.

    python bench/likeness_speed.py [--runs 7] [--size 1024]

The page is a square picture with two faces made from the test photos (tests/photo_fixtures.py):
the astronaut's face at 25% of the side and Grace Hopper's at 5.5% (about 56 px on 1024 px).
Threads are limited to one (OMP and BLAS variables, set before numpy and dlib load) and the
process is pinned to one core where the OS allows. Prints the median of --runs runs of
`score_page` (the target: under 1 s), then each step and the detectors it was chosen over.
Needs the dev requirements (scikit-image, matplotlib).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from PIL import Image, ImageOps  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from photo_fixtures import face_variants, grace_hopper  # noqa: E402
from pipeline import likeness  # noqa: E402
from pipeline.intake import faces  # noqa: E402


def one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (this OS cannot), threads limited to 1"


def placed(page: Image.Image, photo: Image.Image, fraction: float,
           centre: tuple[int, int]) -> Image.Image:
    """The photo pasted so that its face is `fraction` of the page's side, centred at `centre`."""
    face = faces.find_faces(photo)[0]
    zoom = fraction * page.width / face.size
    small = photo.resize((round(photo.width * zoom), round(photo.height * zoom)),
                         Image.Resampling.LANCZOS)
    left, top, right, bottom = face.box
    page.paste(small, (round(centre[0] - (left + right) / 2 * zoom),
                       round(centre[1] - (top + bottom) / 2 * zoom)))
    return page


def median_seconds(run, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs timed; the median is printed")
    parser.add_argument("--size", type=int, default=1024, help="the page's side in pixels")
    args = parser.parse_args()
    print(one_core())
    size = args.size
    photos = face_variants()  # the page shows the mirrored one: a new photo, not a copy
    page = Image.new("RGB", (size, size), (222, 200, 160))
    placed(page, photos["mirrored"], 0.25, (size * 3 // 10, size * 4 // 10))
    placed(page, ImageOps.mirror(grace_hopper()), 0.055, (size * 3 // 4, size * 7 // 10))
    mia = likeness.identity_from_images([photos[k] for k in ("front", "tilted", "wide")])
    cast = [("Mia", mia), ("Gran", likeness.identity_from_images([grace_hopper()]))]

    score = likeness.score_page(page, cast)  # loads the models
    print(score.describe())
    seconds = median_seconds(lambda: likeness.score_page(page, cast), args.runs)
    print(f"score_page, {size}x{size} page, {score.faces} faces: {seconds:.2f} s per page "
          f"(median of {args.runs}, one core)")

    models = faces._models()
    found = faces.find_all_faces(page)
    steps = {
        "find_all_faces": lambda: faces.find_all_faces(page),
        f"  CNN on a {faces.BIG_FACE_SIDE} px copy (big faces)":
            lambda: models["cnn"](faces._scaled(page, faces.BIG_FACE_SIDE)[1], 0),
        "  HOG on a 1600 px copy (faces from 5%)":
            lambda: models["hog"](faces._resized(page, 1600)[1], 0),
        f"describe_face x {len(found)}": lambda: [faces.describe_face(page, f) for f in found],
        "not chosen: CNN on a 512 px copy (find_faces)":
            lambda: models["cnn"](faces._scaled(page, faces.CNN_SIDE)[1], 0),
        "not chosen: HOG on a 1024 px copy upsampled once":
            lambda: models["hog"](faces._scaled(page, 1024)[1], 1),
    }
    for name, run in steps.items():
        print(f"{name:52} {median_seconds(run, max(1, args.runs // 2)):.2f} s")


if __name__ == "__main__":
    main()
