"""Shared fixtures: the tiny SDXL pipeline (built once per session) and per-test settings.

Every test runs offline: HF_HUB_OFFLINE is forced on before anything imports huggingface_hub.
"""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# gradio's upload cache of this run alone: another run's app (a parallel test run on this
# machine) would otherwise share /tmp/gradio and could sweep this run's uploads.
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="taleweaver-tests-gradio-")
for _key in [k for k in os.environ if k.startswith("TALEWEAVER_")]:
    del os.environ[_key]

import pytest  # noqa: E402

from pipeline.settings import Settings  # noqa: E402


@pytest.fixture(autouse=True)
def no_cached_adapters():
    """Each test starts with no characters' adapters cached in the shared pipelines (they stay
    loaded between pictures, and the tiny pipeline is shared by the whole session)."""
    yield
    import sys

    if "pipeline.adapters" in sys.modules:
        sys.modules["pipeline.adapters"].release_idle()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SDXL-architecture pipeline saved as a diffusers folder."""
    from pipeline.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_safety_dir(tmp_path_factory):
    """A tiny random image-safety classifier that passes every picture."""
    from pipeline.testing import save_tiny_safety_model

    return save_tiny_safety_model(tmp_path_factory.mktemp("tiny-safety"))


@pytest.fixture
def settings(tiny_model_dir, tiny_safety_dir, tmp_path):
    """Settings for one test: the tiny model on the CPU, 64-pixel crops, a fresh data folder,
    the tiny safety classifier."""
    return Settings(base_model=str(tiny_model_dir), vae="", data_dir=tmp_path / "data",
                    device="cpu", resolution=64, safety_model=str(tiny_safety_dir))


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


def heavy_modules_after(imports: str) -> list[str]:
    """Which of dlib, torch and the face models a fresh Python has loaded after `imports`
    ("pipeline.likeness, pipeline.characters"): modules that must stay light say none."""
    import subprocess
    import sys

    code = (f"import sys, {imports}; print(' '.join(sorted(m for m in "
            "('dlib', 'torch', 'face_recognition_models') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.split()


def make_crops(count: int, size: int, seed: int):
    """`count` synthetic training crops (soft coloured blobs) with plausible photo geometry:
    [(PIL image, Crop)], each from a 480x640 (h, w) photo at a different place."""
    import numpy as np
    from PIL import Image

    from pipeline.characters import Crop

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    crops = []
    for n in range(count):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        colour, background = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        pixels = blob * colour + (1 - blob) * background + rng.normal(0, 8, (size, size, 3))
        side, left, top = 200 + 20 * n, 40 * n, 30 + 10 * n
        crops.append((Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)),
                      Crop(file="", original_size=(480, 640),
                           crop_box=(left, top, left + side, top + side), source=f"photo{n}.jpg")))
    return crops


@pytest.fixture
def character(settings):
    """"Mia", a girl (trigger "ohwx"), with 4 synthetic crops at settings.resolution, saved for
    settings.local_user."""
    from pipeline.characters import CharacterStore

    return CharacterStore(settings, settings.local_user).create(
        "Mia", "girl", "curly red hair", "ohwx", make_crops(4, settings.resolution, seed=0))


@pytest.fixture(scope="session")
def two_trained_characters(tiny_model_dir, tiny_safety_dir, tmp_path_factory):
    """Two characters with small trained adapters on the tiny model, user "local": "Mia" (girl,
    trigger "ohwx") and "Rex" (dog, trigger "zwx"). Returns a namespace (data_dir, user, names);
    build Settings(base_model=str(tiny_model_dir), vae="", data_dir=data_dir, device="cpu",
    resolution=64) to use them."""
    from types import SimpleNamespace

    from pipeline.characters import CharacterStore
    from pipeline.training.config import preset_config
    from pipeline.training.trainer import train_character

    data_dir = tmp_path_factory.mktemp("trained") / "data"
    settings = Settings(base_model=str(tiny_model_dir), vae="", data_dir=data_dir, device="cpu",
                        resolution=64, safety_model=str(tiny_safety_dir))
    store = CharacterStore(settings, "local")
    for name, kind, trigger, seed in (("Mia", "girl", "ohwx", 1), ("Rex", "dog", "zwx", 2)):
        store.create(name, kind, "", trigger, make_crops(3, 64, seed))
        config = preset_config("person", 3, steps=12, rank=4, warmup_steps=0,
                               prior_preservation=False, validation_steps=2, seed=seed)
        train_character(settings, "local", name, config)
    return SimpleNamespace(data_dir=data_dir, user="local", names=("Mia", "Rex"))


@pytest.fixture
def cast(settings, two_trained_characters):
    """User "alice" with copies of the two trained characters: Mia (girl, "ohwx") and Rex
    (dog, "zwx"), their adapters included."""
    import shutil

    from pipeline.characters import CharacterStore

    trained = Settings(data_dir=two_trained_characters.data_dir)
    store = CharacterStore(settings, "alice")
    shutil.copytree(CharacterStore(trained, two_trained_characters.user).root, store.root)
    return store


@pytest.fixture(scope="session")
def face_photos(tmp_path_factory):
    """Five acceptable photos of one person (scikit-image's astronaut: as is, mirrored, tilted,
    on a wider canvas, re-lit), JPEG and PNG, each at least 512 px on its short side; none is
    rejected (at a 1024 px resolution each gets a warning that its crop is enlarged). Each
    takes about 1.5 s through add_character (face detection on the CPU)."""
    from photo_fixtures import write_face_photos

    return write_face_photos(tmp_path_factory.mktemp("face-photos"))


def pipeline_snapshot(pipe) -> dict:
    """Everything that would betray a visit to a pipeline: every tensor with its requires_grad,
    dtype and device; every module's class, train flag and instance attribute names.
    Run the pipeline once before taking it (transformers marks its hooks on a first call)."""
    import torch

    out = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            tensors = {k: (v.detach().clone(), v.requires_grad, v.dtype, v.device)
                       for k, v in component.state_dict(keep_vars=True).items()}
            modules = [(k, type(m).__name__, m.training, sorted(vars(m)))
                       for k, m in component.named_modules()]
            out[name] = (tensors, modules)
    return out


def assert_same_pipeline(before: dict, after: dict) -> None:
    """Two pipeline_snapshot()s are identical, bit for bit."""
    import torch

    assert before.keys() == after.keys()
    for name in before:
        (tensors_a, modules_a), (tensors_b, modules_b) = before[name], after[name]
        assert modules_a == modules_b, name
        assert tensors_a.keys() == tensors_b.keys(), name
        for key, (value, *flags) in tensors_a.items():
            assert torch.equal(value, tensors_b[key][0]), (name, key)
            assert tuple(flags) == tensors_b[key][1:], (name, key)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's torch work on one thread: the tiny model's small kernels are faster so,
    and far faster when other work shares the two CPU cores. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- The Hub, faked (test_hub, test_hub_calls, test_model_card; helpers in fake_hub.py) ------

@pytest.fixture
def fake():
    """An in-process stand-in for the HfApi methods hub.py uses (users alice and bob)."""
    from fake_hub import FakeHub

    return FakeHub()


@pytest.fixture
def online(monkeypatch):
    """Lift HF_HUB_OFFLINE for code that talks to the fake (no real client is ever built)."""
    from fake_hub import NoHub
    from huggingface_hub import constants

    from pipeline.hub import calls as hub_calls

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_calls, "hf_api", NoHub)


@pytest.fixture
def waits():
    """The backoff waits of Hub retries, recorded instead of slept (pass waits.append)."""
    return []


@pytest.fixture
def mia(settings):
    """Alice's "Mia" (girl, trigger "ohwx") with an adapter folder as training leaves it."""
    from fake_hub import write_adapter
    from PIL import Image

    from pipeline.characters import CharacterStore, Crop

    store = CharacterStore(settings, "alice")
    crop = Crop("", (64, 64), (0, 0, 64, 64), "mia.jpg")
    image = Image.new("RGB", (64, 64), (200, 150, 120))
    character = store.create("Mia", "girl", "curly red hair", "ohwx", [(image, crop)] * 3)
    write_adapter(store.adapter_dir(character))
    return character
