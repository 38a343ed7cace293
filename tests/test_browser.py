"""The app in a real browser: headless Chromium (Debian's package, driven by Playwright) clicks
through the four tabs as a parent would: photos in, a few training steps, a three-page story
illustrated at 64x64, the book read in the gallery and its PDF downloaded.

Screenshots of each tab are kept in test-artifacts/browser/. It needs Debian's chromium
(.ci/run installs it); without it the test is skipped and says why. Marked slow.
"""
import os
import re
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
from pypdf import PdfReader  # noqa: E402
from served import served_app  # noqa: E402

from pipeline.settings import Settings  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
STORY = """Mia woke up early and ran to the window.

Mia built a sandcastle with a red flag.
Scene: Mia on the beach next to a big sandcastle with a red flag

That night Mia dreamed of boats."""
SLOW = 90_000  # ms: face detection, training and drawing on 2 CPU cores
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"Chromium is missing ({CHROMIUM}): install Debian's chromium "
    "package (apt-get install chromium), as .ci/run does")]


@pytest.fixture(scope="module")
def url(tiny_model_dir, tmp_path_factory):
    """The app on 127.0.0.1 without sign-in (one local user), the tiny model, 64 px crops."""
    settings = Settings(base_model=str(tiny_model_dir), vae="", device="cpu", resolution=64,
                        data_dir=tmp_path_factory.mktemp("browser") / "data",
                        require_login="never", redraw_tries=0)
    with served_app(settings) as address:
        yield address


@pytest.fixture(scope="module")
def page(url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        tab.set_default_timeout(30_000)
        tab.goto(url)
        tab.get_by_role("button", name="Add character").wait_for()
        try:
            yield tab
        finally:
            browser.close()


def shoot(page, name: str) -> None:
    """A screenshot of what a parent sees, which never shows a command or a server path."""
    page.wait_for_timeout(300)  # let the last update paint
    seen = page.locator("body").inner_text()
    for jargon in ("python -m", "HF_TOKEN=", "/tmp/", "`"):
        assert jargon not in seen, f"{name}: the page shows {jargon!r}"
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_a_parent_makes_a_book_in_the_browser(page, face_photos, tmp_path):
    from playwright.sync_api import expect

    # 1. Characters: three photos of one face, the verdict on each, the crops kept. Too few
    # photos first: the message says what to do.
    page.get_by_label("Name").fill("Mia")
    (tmp_path / "shopping.jpg").write_text("eggs, milk")
    page.locator("input[type=file]").first.set_input_files(
        [str(face_photos[0]), str(tmp_path / "shopping.jpg"), str(face_photos[0])])
    page.get_by_role("button", name="Add character").click()
    expect(page.get_by_text("only 1 of 3 photos can be used")).to_be_visible(timeout=SLOW)
    shoot(page, "0-too-few-photos")
    page.get_by_test_id("toast-close").click()  # as a parent would, after reading it
    expect(page.get_by_test_id("toast-body")).to_have_count(0)
    # The server deleted the uploads, so the photo box is empty again.
    expect(page.get_by_role("row", name=re.compile("shopping.jpg"))).to_have_count(0)
    page.get_by_label("Look (optional)").fill("curly red hair")
    page.locator("input[type=file]").first.set_input_files([str(p) for p in face_photos[:3]])
    expect(page.get_by_role("row", name=re.compile(re.escape(face_photos[2].name)))) \
        .to_be_visible()
    page.get_by_role("button", name="Add character").click()
    expect(page.get_by_text("Saved Mia (girl) with 3 of 3 photos")).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("gridcell", name="accepted", exact=True)).to_have_count(3)
    expect(page.get_by_role("gridcell", name="curly red hair")).to_be_visible()
    shoot(page, "1-characters")

    # 2. Train: the estimate before starting, then a few steps with the validation image.
    open_tab(page, "2 · Train")
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Training steps").fill("4")
    page.get_by_label("More training settings (JSON)").fill(
        '{"prior_preservation": false, "validation": "on", "validation_steps": 2}')
    page.get_by_label("More training settings (JSON)").blur()
    expect(page.get_by_text(re.compile(r"Estimated:.*4 steps"))).to_be_visible()
    page.get_by_role("button", name="Start or continue training").click()
    expect(page.get_by_text("Mia is trained (4 steps")).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Validation image: Mia: not found on this picture")).to_be_visible()
    expect(page.get_by_text("Upload skipped: no Hugging Face token. Mia's adapter is safe on "
                            "this machine. To do it, start the app with HF_TOKEN set to a "
                            'Hugging Face write token, then press "Upload to my Hugging Face '
                            'repo".')).to_be_visible()
    expect(page.get_by_text("nothing left to train")).to_be_visible()
    shoot(page, "2-train")

    # 3. Story: pages with editable scenes, illustrated at 64x64 in 2 steps.
    open_tab(page, "3 · Story")
    page.get_by_label("Title").fill("Mia at the Sea")
    page.get_by_label("Story", exact=True).fill(STORY)
    page.get_by_text("Picture options").click()
    for label, value in (("Width (0: the style's)", "64"), ("Height (0: the style's)", "64"),
                         ("Steps (0: the style's)", "2")):
        page.get_by_label(label).fill(value)
        page.get_by_label(label).blur()
    page.get_by_role("button", name="Make the pages").click()
    expect(page.get_by_text("Mia at the Sea: 3 pages, ready to illustrate")).to_be_visible()
    expect(page.get_by_role("gridcell", name="Mia on the beach next to a big sandcastle with a "
                                             "red flag", exact=True)).to_be_visible()
    scene = page.get_by_role("gridcell", name="That night Mia dreamed of boats.", exact=True)
    expect(scene).to_have_count(2)  # the page's text, and its scene (no Scene line)
    scene.nth(1).dblclick()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Mia asleep in a small boat under the stars")
    page.keyboard.press("Enter")
    expect(page.get_by_role("gridcell", name=re.compile(
        r"^Mia asleep in a small boat under the stars"))).to_be_visible()
    expect(page.get_by_role("gridcell", name=re.compile(r"curly red hair"))).to_have_count(0)
    page.get_by_role("button", name="Illustrate all pages").click()
    expect(page.get_by_text("every page has a picture")).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("img", name="Page 3")).to_be_visible()
    shoot(page, "3-story")
    page.get_by_role("img", name="Page 2").click()
    expect(page.get_by_text("Page 2's pictures: click one to put it in the book")).to_be_visible()
    page.get_by_role("button", name="Redraw this page").click()
    in_the_book = r"^Picture {} \(in the book\)\s+Mia: not found on this picture$"
    expect(page.get_by_role("img", name=re.compile(in_the_book.format(2)))) \
        .to_be_visible(timeout=SLOW)
    page.get_by_role("img", name=re.compile(r"^Picture 1\s+Mia: not found")).click()
    expect(page.get_by_role("img", name=re.compile(in_the_book.format(1)))) \
        .to_be_visible()
    shoot(page, "3-story-redraw")

    # 4. Gallery: the cover, the book page by page, the PDF.
    open_tab(page, "4 · Gallery")
    cover = page.get_by_role("img", name=re.compile(r"^Mia at the Sea\s+Likeness: Mia"))
    cover.click()
    expect(page.get_by_role("heading", name="Mia at the Sea")).to_be_visible()
    expect(page.locator(".tw-page-text")).to_have_text("A story about Mia")
    page.get_by_role("button", name="Next ▶").click()
    expect(page.get_by_text("Page 1 of 3")).to_be_visible()
    expect(page.locator(".tw-page-text")).to_have_text("Mia woke up early and ran to the window.")
    shoot(page, "4-gallery")
    page.get_by_role("button", name="Make the download").click()
    link = page.get_by_role("row", name=re.compile(r"mia-at-the-sea\.pdf")).get_by_role("link")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "mia-at-the-sea.pdf"
    assert len(PdfReader(saved).pages) == 4
    shoot(page, "5-download")

    # Back the next day: the Story tab opens on the book, its pages shown.
    page.reload()
    open_tab(page, "3 · Story")
    expect(page.get_by_text("Mia at the Sea: every page has a picture")).to_be_visible()
    expect(page.get_by_role("gridcell", name="That night Mia dreamed of boats.")).to_be_visible()
