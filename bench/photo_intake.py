"""Face detectors compared (faces found, seconds) and the intake time of phone-size photos.

    python bench/photo_intake.py [--photos 4]

Uses the real face photos that the tests use (scikit-image's astronaut, matplotlib's Grace
Hopper, scikit-image's camera man, whose face is turned down) and two made here: a face that is
small in a wide photo, and 12-megapixel JPEGs (4032x3024, like a phone's) for the intake time.
Needs the dev requirements (scikit-image, matplotlib).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from photo_fixtures import astronaut, face_variants, grace_hopper, on_canvas  # noqa: E402

from pipeline import faces  # noqa: E402
from pipeline.intake.photos import review_photos  # noqa: E402
from pipeline.settings import Settings  # noqa: E402


def _photos() -> dict[str, Image.Image]:
    from skimage import data

    found = dict(face_variants())
    found["hopper"] = grace_hopper()
    found["camera"] = Image.fromarray(data.camera()).convert("RGB")
    found["small face"] = on_canvas(astronaut().resize((300, 300)), (2000, 1500), (900, 500))
    return found


def _timed(run) -> tuple[int, float]:
    start = time.perf_counter()
    count = len(run())
    return count, time.perf_counter() - start


def compare_detectors() -> None:
    models = faces._models()
    detectors = {
        "HOG 512": lambda im: models["hog"](faces._scaled(im, 512)[1], 0),
        "HOG 1024 x2": lambda im: models["hog"](faces._scaled(im, 1024)[1], 1),
        "CNN 512": lambda im: models["cnn"](faces._scaled(im, 512)[1], 0),
        "CNN 1024": lambda im: models["cnn"](faces._scaled(im, 1024)[1], 0),
        "find_faces": faces.find_faces,
    }
    print(f"{'photo':12} " + " ".join(f"{name:>13}" for name in detectors))
    for name, image in _photos().items():
        cells = []
        for detector in detectors.values():
            count, seconds = _timed(lambda: detector(image))
            cells.append(f"{count} in {seconds:5.2f}s")
        print(f"{name:12} " + " ".join(f"{cell:>13}" for cell in cells))


def intake_time(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, image in enumerate(list(face_variants().values())[:count]):
            big = image.resize((3024, 3024), Image.Resampling.LANCZOS)
            path = Path(tmp) / f"phone_{i}.jpg"
            on_canvas(big, (4032, 3024), (504, 0)).save(path, quality=90)
            paths.append(path)
        settings = Settings(data_dir=Path(tmp) / "data", resolution=1024)
        start = time.perf_counter()
        review = review_photos(settings, "woman", paths)
        seconds = time.perf_counter() - start
    accepted = sum(r.accepted for r in review.reports)
    print(f"intake: {len(paths)} photos of 4032x3024 (JPEG) -> {accepted} accepted 1024 px crops "
          f"in {seconds:.1f} s, {seconds / len(paths):.2f} s a photo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4, help="phone-size photos to time (max 5)")
    args = parser.parse_args()
    faces.find_faces(astronaut())  # load the models first
    compare_detectors()
    intake_time(args.photos)


if __name__ == "__main__":
    main()
