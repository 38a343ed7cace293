"""Shared fixtures: the tiny SDXL pipeline (built once per session) and per-test settings.

Every test runs offline: HF_HUB_OFFLINE is forced on before anything imports huggingface_hub.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _key in [k for k in os.environ if k.startswith("TALEWEAVER_")]:
    del os.environ[_key]

import pytest  # noqa: E402

from pipeline.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SDXL-architecture pipeline saved as a diffusers folder."""
    from pipeline.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture
def settings(tiny_model_dir, tmp_path):
    """Settings for one test: the tiny model on the CPU, 64-pixel crops, a fresh data folder."""
    return Settings(base_model=str(tiny_model_dir), vae="", data_dir=tmp_path / "data",
                    device="cpu", resolution=64)


BOOK_TEXTS = (  # accents, curly quotes, apostrophes, guillemets, emoji and CJK (left out in PDFs)
    "Mia and Grandma baked “magic” cookies: crème brûlée, of course! 🍪",
    "Grandma’s dog didn’t like the oven’s noise. “Woof!” said Rex, naïve and façade-free.",
    "That night Mia whispered «Bonne nuit, mamie» … and fell asleep. 晚安",
)


def make_picture(width: int, height: int, seed: int):
    """A deterministic test illustration (a gradient with a disc): no model needed."""
    import numpy as np
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 37 * seed % 256)], -1)
    image = Image.fromarray(pixels.astype(np.uint8))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4),
                                  fill=(250, 220, 120))
    return image


@pytest.fixture
def book_settings(tmp_path):
    """Settings for book tests: a fresh data folder and no model (books never load one)."""
    return Settings(data_dir=tmp_path / "data", device="cpu")


@pytest.fixture
def illustrated_book(book_settings):
    """(BookStore, Book): 3 pages of unicode text about Mia and Grandma, each with a
    1024x1024 PNG illustration, for user "alice"."""
    from pipeline.book import BookStore
    from pipeline.story import Page

    store = BookStore(book_settings, "alice")
    pages = [Page(text, f"scene {n}", ("Mia", "Grandma") if n != 2 else ("Mia",))
             for n, text in enumerate(BOOK_TEXTS, start=1)]
    book = store.create("Mia & Grandma’s Cookie Night", "watercolor", 1234, pages)
    for number in range(1, len(pages) + 1):
        book = store.add_illustration(book.id, number, make_picture(1024, 1024, number),
                                      seed=1234 + number, prompt=f"watercolor, scene {number}")
    return store, book
