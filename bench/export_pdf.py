"""How long a full-size book takes to export, and how big the files are.

    python bench/export_pdf.py [--pages 40] [--size 1024]

Makes a book of noisy PNG pictures (worst case for compression; no model needed) in a
temporary folder and prints seconds and megabytes for the PDF and the HTML export.
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
from pipeline.export import export_html, export_pdf  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.story import Page  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--size", type=int, default=1024, help="picture side in pixels")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = BookStore(Settings(data_dir=Path(tmp) / "data"), "bench")
        text = "Mia and Grandma walked to the lighthouse, where the wind sang old songs. " * 3
        book = store.create("Bench book", "watercolor", 0,
                            [Page(text, "scene", ("Mia", "Grandma"))] * args.pages)
        start = time.perf_counter()
        for number in range(1, args.pages + 1):
            pixels = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
            book = store.add_illustration(book.id, number, Image.fromarray(pixels),
                                          seed=number, prompt="p")
        print(f"stored {args.pages} pictures of {args.size} px: "
              f"{time.perf_counter() - start:.1f} s")
        for name, export in (("pdf", export_pdf), ("html", export_html)):
            out = Path(tmp) / f"book.{name}"
            start = time.perf_counter()
            export(store, book, out)
            print(f"{name}: {time.perf_counter() - start:.1f} s, "
                  f"{out.stat().st_size / 1e6:.1f} MB, {args.pages + 1} pages")


if __name__ == "__main__":
    main()
