"""Test photos made from real face photos that ship inside installed packages.

scikit-image's `data.astronaut()` (Eileen Collins, 512x512) is "one person"; matplotlib's
sample_data/grace_hopper.jpg (512x600) is "someone else". Different photos of one face are made
by mirroring, rotating, padding and re-lighting, each far enough apart in the perceptual hash
not to count as near duplicates. Nothing here is downloaded.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def grace_hopper() -> Image.Image:
    """A frontal portrait of another person, 512x600."""
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(list(spec.submodule_search_locations)[0])
    return Image.open(folder / "mpl-data" / "sample_data" / "grace_hopper.jpg").convert("RGB")


def on_canvas(image: Image.Image, size: tuple[int, int], at: tuple[int, int],
              colour: tuple[int, int, int] = (90, 110, 140)) -> Image.Image:
    canvas = Image.new("RGB", size, colour)
    canvas.paste(image, at)
    return canvas


def face_variants() -> dict[str, Image.Image]:
    """Five different-looking photos of the astronaut's face, each at least 512 px."""
    face = astronaut()
    mirrored = ImageOps.mirror(face)
    relit = ImageEnhance.Contrast(ImageEnhance.Brightness(mirrored).enhance(1.15)).enhance(0.9)
    return {
        "front": face,
        "mirrored": mirrored,
        "tilted": face.rotate(10, resample=Image.Resampling.BICUBIC, expand=True,
                              fillcolor=(200, 190, 170)),
        "wide": on_canvas(face, (680, 560), (140, 30)),
        "relit": relit.rotate(-6, resample=Image.Resampling.BICUBIC, expand=True,
                              fillcolor=(60, 60, 60)),
    }


def write_face_photos(folder: Path) -> list[Path]:
    """The five variants saved as PNG and JPEG files in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, image) in enumerate(face_variants().items()):
        path = folder / (f"{name}.png" if i % 2 else f"{name}.jpg")
        image.save(path, **({} if i % 2 else {"quality": 92}))
        paths.append(path)
    return paths


def noise_png(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """Random pixels: a PNG that compresses badly, for file-size limits."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path
