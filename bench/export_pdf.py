"""How long a full-size book takes to export, and how big the files are: the print-grade PDF
(pictures enlarged to 300 dpi at their printed size), the screen PDF and the HTML book.

    python bench/export_pdf.py [--pages 40] [--size 1024] [--trim 8.5x8.5] [--no-bleed] [--noise]
    python bench/export_pdf.py --pages 4 --size 256 --tiny-upscaler   # the model path, CPU

Makes a book in a temporary folder (no model draws its pictures): smooth pictures with a
little grain, like painted illustrations, or with `--noise` pure noise (the worst case for
compression). The print PDF's pictures are enlarged as TALEWEAVER_UPSCALER and the machine
decide (on the CPU: a Lanczos resize), or with `--tiny-upscaler` by the tiny random Swin2SR
model on this machine's device (the model path; its pictures are noise).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.book import BookStore  # noqa: E402
from pipeline.export import TRIMS, export_html, export_pdf  # noqa: E402
from pipeline.export.upscale import SuperResolution, choose_upscaler  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.story import Page  # noqa: E402


def picture(rng: np.random.Generator, size: int, noise: bool) -> Image.Image:
    """Pure noise, or soft colour fields with a few shapes and a little grain."""
    if noise:
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    y, x = np.mgrid[0:size, 0:size] / size
    pixels = np.zeros((size, size, 3))
    for _ in range(6):  # soft blobs of colour
        cx, cy, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.1, 0.4)]
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        pixels = pixels * (1 - blob) + blob * rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 4, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--size", type=int, default=1024, help="picture side in pixels")
    parser.add_argument("--trim", default="8.5x8.5", choices=[n for n, t in TRIMS.items()
                                                              if t.print_grade])
    parser.add_argument("--no-bleed", action="store_true")
    parser.add_argument("--noise", action="store_true", help="pictures of pure noise")
    parser.add_argument("--tiny-upscaler", action="store_true",
                        help="enlarge with the tiny random Swin2SR model (pipeline/testing.py)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env()
        settings = Settings(**{**settings.__dict__, "data_dir": Path(tmp) / "data"})
        if args.tiny_upscaler:
            from pipeline.testing import save_tiny_upscaler

            tiny = save_tiny_upscaler(Path(tmp) / "tiny-swin2sr")
            settings = Settings(**{**settings.__dict__, "upscaler": str(tiny)})
            upscaler = SuperResolution(settings)
        else:
            upscaler = choose_upscaler(settings)
        store = BookStore(settings, "bench")
        text = "Mia and Grandma walked to the lighthouse, where the wind sang old songs. " * 3
        book = store.create("Bench book", "watercolor", 0,
                            [Page(text, "scene", ("Mia", "Grandma"))] * args.pages)
        book = store.set_words(book.id, dedication="For Mia, on her fourth birthday",
                               closing="The end.")
        start = time.perf_counter()
        for number in range(1, args.pages + 1):
            book = store.add_illustration(book.id, number, picture(rng, args.size, args.noise),
                                          seed=number, prompt="p")
        print(f"stored {args.pages} pictures of {args.size} px: "
              f"{time.perf_counter() - start:.1f} s")
        runs = [(f"print pdf ({args.trim}{'' if args.no_bleed else ', bleed'})",
                 lambda out: export_pdf(store, book, out, trim=args.trim,
                                        bleed=not args.no_bleed, upscaler=upscaler), ".pdf"),
                ("screen pdf", lambda out: export_pdf(store, book, out), ".pdf"),
                ("html", lambda out: export_html(store, book, out), ".html")]
        for name, export, suffix in runs:
            out = Path(tmp) / f"book{suffix}"
            start = time.perf_counter()
            done = export(out)
            seconds = time.perf_counter() - start
            print(f"{name}: {seconds:.1f} s ({seconds / args.pages:.2f} s a page), "
                  f"{out.stat().st_size / 1e6:.1f} MB, {done.pages} pages; pictures: "
                  f"{done.pictures}")


if __name__ == "__main__":
    main()
