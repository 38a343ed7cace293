"""Pictures enlarged for print (pipeline/export/upscale.py): the Swin2SR model path with a tiny
random model on the CPU, the plain resize, which one is chosen, and what the PDF says."""
import numpy as np
import pytest
from conftest import make_picture
from PIL import Image
from pypdf import PdfReader

from pipeline.export import export_pdf, upscale
from pipeline.export.upscale import (Resize, SuperResolution, choose_upscaler, lanczos,
                                     print_size, super_resolve, upscale_seconds)
from pipeline.hardware import Hardware, ZEROGPU_CALL_SECONDS, detect
from pipeline.settings import Settings, SettingsError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_upscaler(tmp_path_factory):
    from pipeline.testing import save_tiny_upscaler

    return save_tiny_upscaler(tmp_path_factory.mktemp("tiny-swin2sr"))


@pytest.fixture
def sr_settings(tiny_upscaler, tmp_path):
    return Settings(data_dir=tmp_path / "data", device="cpu", upscaler=str(tiny_upscaler))


def test_the_model_enlarges_by_its_factor_then_to_the_exact_size(sr_settings):
    hardware = detect(sr_settings)
    picture = make_picture(70, 50, 3)
    enlarged = super_resolve(sr_settings, hardware, picture)
    assert enlarged.size == (140, 100) and enlarged.mode == "RGB"
    upscaler = SuperResolution(sr_settings, hardware)
    assert upscaler(picture, (301, 215)).size == (301, 215)
    assert upscaler.name == f"{sr_settings.upscaler.split('/')[-1]} (Swin2SR " \
                            "super-resolution, transformers)"  # a folder by its name only
    assert np.array_equal(np.asarray(upscaler(picture, (70, 50))), np.asarray(picture))


def test_tiles_join_without_seams(sr_settings, monkeypatch):
    hardware = detect(sr_settings)
    picture = make_picture(40, 40, 1)
    whole = np.asarray(super_resolve(sr_settings, hardware, picture), dtype=np.int16)
    monkeypatch.setattr(upscale, "TILE", 16)
    monkeypatch.setattr(upscale, "OVERLAP", 8)
    tiled = np.asarray(super_resolve(sr_settings, hardware, picture), dtype=np.int16)
    # The window attention sees a little less context near tile edges: nearly the same.
    assert np.abs(whole - tiled).mean() < 2


def test_without_a_gpu_or_when_asked_a_plain_resize_is_used(sr_settings):
    assert choose_upscaler(sr_settings).name == \
        "Lanczos resize (Pillow): no GPU here for the super-resolution model"
    lanczos_only = Settings(data_dir=sr_settings.data_dir, upscaler="lanczos")
    assert choose_upscaler(lanczos_only).name == "Lanczos resize (Pillow)"
    picture = make_picture(64, 48, 2)
    assert Resize()(picture, (256, 192)).tobytes() == \
        picture.resize((256, 192), Image.Resampling.LANCZOS).tobytes()
    assert lanczos(picture.convert("RGBA"), (64, 48)).mode == "RGB"
    with pytest.raises(SettingsError, match="TALEWEAVER_UPSCALER=' ' is invalid"):
        Settings(upscaler=" ")


def test_a_model_that_cant_be_loaded_falls_back_to_a_resize(tmp_path):
    settings = Settings(data_dir=tmp_path, device="cpu", upscaler=str(tmp_path / "missing"))
    upscaler = SuperResolution(settings, detect(settings))
    assert upscaler(make_picture(20, 20, 1), (50, 50)).size == (50, 50)
    assert upscaler.name == "Lanczos resize (Pillow): the super-resolution model could not " \
                            "be loaded"


def test_the_pdf_says_which_upscaler_made_its_pictures(sr_settings, tmp_path):
    from pipeline.book import BookStore
    from pipeline.story import Page

    store = BookStore(sr_settings, "alice")
    book = store.create("Tiny", "ink", 1, [Page("Hello.", "Hello.")])
    book = store.add_illustration(book.id, 1, make_picture(48, 48, 1), seed=1, prompt="p")
    upscaler = SuperResolution(sr_settings, detect(sr_settings))
    done = export_pdf(store, book, tmp_path / "book.pdf", trim="8.5x8.5", upscaler=upscaler)
    metadata = PdfReader(done.path).metadata
    assert metadata["/Pictures"] == done.pictures == f"300 dpi at printed size: {upscaler.name}"
    assert "Swin2SR" in done.pictures


def test_print_sizes_and_the_zerogpu_request():
    assert print_size(522, 522, 300) == (2175, 2175)
    assert print_size(72.001, 36, 300) == (301, 150)
    gpu = Hardware("zerogpu", "cuda", "bfloat16", "ZeroGPU")
    assert upscale_seconds(Settings(), gpu, Image.new("RGB", (1024, 1024))) == 25
    assert upscale_seconds(Settings(), gpu, Image.new("RGB", (8192, 8192))) == \
        ZEROGPU_CALL_SECONDS
