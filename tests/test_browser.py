"""The app in a real browser: headless Chromium (Debian's package, driven by Playwright) clicks
through the four tabs as a parent would: photos in (a refusal first, which keeps the photos and
shows every verdict), a long training left behind by reloading the page and found again (its
character selected, its progress at the top) and cancelled, a few training steps, a three-page
story illustrated at 64x64, the book read in the gallery and its PDF downloaded, and deleting
a character and a book, each after a question.

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
def url(tiny_model_dir, tiny_safety_dir, tmp_path_factory):
    """The app on 127.0.0.1 without sign-in (one local user), the tiny model, 64 px crops."""
    settings = Settings(base_model=str(tiny_model_dir), vae="", device="cpu", resolution=64,
                        data_dir=tmp_path_factory.mktemp("browser") / "data",
                        require_login="never", redraw_tries=0,
                        safety_model=str(tiny_safety_dir))
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
    expect(page.get_by_text("only 1 of 3 photos can be used").first).to_be_visible(timeout=SLOW)
    page.get_by_test_id("toast-close").click()  # as a parent would, after reading it
    expect(page.get_by_test_id("toast-body")).to_have_count(0)
    # Nothing was saved, every photo's verdict shows, and the photos are still in their box
    # (a row there and one in the verdicts) for another try.
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    expect(page.get_by_role("gridcell", name="accepted", exact=True)).to_have_count(1)
    expect(page.get_by_role("gridcell", name=re.compile("same file as photo 1"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("shopping.jpg"))).to_have_count(2)
    shoot(page, "0-too-few-photos")
    # The parent fixes that: out go the shopping list and the second copy, in two more photos.
    page.get_by_label("Look (optional)").fill("curly red hair")
    page.get_by_role("row", name=re.compile("shopping.jpg")).get_by_label("Remove this file") \
        .click()
    page.get_by_label("Remove this file").last.click()
    expect(page.get_by_label("Remove this file")).to_have_count(0)  # one file: no such button
    page.locator("input[type=file]").first.set_input_files([str(p) for p in face_photos[1:3]])
    expect(page.get_by_label("Remove this file")).to_have_count(3)
    page.get_by_role("button", name="Add character").click()
    expect(page.get_by_text("Saved Mia (girl) with 3 of 3 photos")).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("gridcell", name="accepted", exact=True)).to_have_count(3)
    expect(page.get_by_role("gridcell", name="curly red hair")).to_be_visible()
    shoot(page, "1-characters")
    page.get_by_label("Name").fill("Rex")  # a pet: no face needed
    page.get_by_label("Who is it?").first.fill("dog")
    page.get_by_label("Look (optional)").fill("")
    page.locator("input[type=file]").first.set_input_files([str(p) for p in face_photos[2:5]])
    page.get_by_role("button", name="Add character").click()
    expect(page.get_by_text("Saved Rex (dog) with 3 of 3 photos")).to_be_visible(timeout=SLOW)

    # 2. Train. A long run for Rex, left behind by reloading the page: the page that opens
    # shows it at the top with its progress, Rex selected, and it can be cancelled there.
    open_tab(page, "2 · Train")
    choose(page, "Rex")
    expect(page.get_by_role("radio", name=re.compile("^Pet"))).to_be_checked()
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Training steps").fill("5000")
    page.get_by_label("More training settings (JSON)").fill(
        '{"prior_preservation": false, "validation_steps": 2}')
    page.get_by_label("More training settings (JSON)").blur()
    expect(page.get_by_text(re.compile(r"Estimated:.*5000 steps"))).to_be_visible()
    page.get_by_role("button", name="Start or continue training").click()
    expect(page.get_by_role("tabpanel").get_by_text(re.compile(r"step \d+/5000"))).to_be_visible(
        timeout=SLOW)  # the progress bar (the work panel above the tabs says it too)
    page.reload()
    expect(page.get_by_text(re.compile(r"Training Rex: step \d+/5000"))).to_be_visible()
    open_tab(page, "2 · Train")
    expect(visible(page.get_by_label("Character", exact=True))).to_have_value(re.compile("^Rex"))
    expect(page.get_by_text("Rex is training (started earlier)")).to_be_visible()
    shoot(page, "2-train-found-again")
    page.get_by_role("button", name="Cancel it").click()
    expect(page.get_by_text("Training Rex: cancelled; press Start or continue training")) \
        .to_be_visible(timeout=SLOW)

    # Then Mia: the estimate before starting, a few steps, the validation image.
    choose(page, "Mia")
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Training steps").fill("4")
    page.get_by_label("More training settings (JSON)").fill(
        '{"prior_preservation": false, "validation": "on", "validation_steps": 2}')
    page.get_by_label("More training settings (JSON)").blur()
    expect(page.get_by_text(re.compile(r"Estimated:.*4 steps"))).to_be_visible()
    page.get_by_role("button", name="Start or continue training").click()
    # In the Train tab: the work panel above the tabs may say it too, if it saw the run going.
    expect(page.get_by_role("tabpanel").get_by_text("Mia is trained (4 steps")).to_be_visible(
        timeout=SLOW)
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
    expect(page.get_by_text("Pages are drawn at 512x400 in 12 steps: without a GPU here")) \
        .to_be_visible()
    for label, value in (("Width (0: automatic)", "64"), ("Height (0: automatic)", "64"),
                         ("Steps (0: automatic)", "2")):
        page.get_by_label(label).fill(value)
        page.get_by_label(label).blur()
    expect(page.get_by_text("Pages are drawn at 64x64 in 2 steps.")).to_be_visible()
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
    assert len(PdfReader(saved).pages) == 5  # the cover, three pages and the back cover
    shoot(page, "5-download")

    # Back the next day: the Story tab opens on the book, its pages shown.
    page.reload()
    open_tab(page, "3 · Story")
    expect(page.get_by_text("Mia at the Sea: every page has a picture")).to_be_visible()
    expect(page.get_by_role("gridcell", name="That night Mia dreamed of boats.")).to_be_visible()

    # 5. Deleting asks first, and says which books use the character.
    open_tab(page, "1 · Characters")
    page.get_by_text("Delete a character").click()
    choose(page, "Mia")
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_text("Delete Mia? Its photos, crops and adapter on this server go. Mia "
                            "is in 1 book: “Mia at the Sea” (pages 1, 2, 3)")).to_be_visible()
    shoot(page, "6-delete-asks")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text("Delete Mia?")).to_have_count(0)
    choose(page, "Rex")
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_text("No book uses Rex.")).to_be_visible()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_text("Deleted Rex with its photos")).to_be_visible()
    expect(page.get_by_role("gridcell", name="Rex", exact=True)).to_have_count(0)
    open_tab(page, "4 · Gallery")
    page.get_by_role("img", name=re.compile(r"^Mia at the Sea\s+Likeness: Mia")).click()
    page.get_by_role("button", name="Delete this book…").click()
    expect(page.get_by_text("Delete “Mia at the Sea”? Its 3 pages and every picture")) \
        .to_be_visible()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_text("Deleted “Mia at the Sea”.")).to_be_visible()
    expect(page.get_by_text("No books yet")).to_be_visible()


def visible(locator):
    """The one of these elements that shows (each tab has its own "Character")."""
    return locator.filter(visible=True)


def choose(page, name: str) -> None:
    """Pick a character in the "Character" dropdown that shows, as a parent would."""
    from playwright.sync_api import expect

    box = visible(page.get_by_label("Character", exact=True))
    expect(box).to_have_value(re.compile(r"\w"))  # the tab has listed the characters
    box.click()
    page.get_by_role("option", name=re.compile(f"^{name}")).click()
    expect(box).to_have_value(re.compile(f"^{name}"))

# --- Reading aloud, the spreads and the page editor (a second app with a finished book) ------

SPEECH_STUB = """(() => {
  // Headless Chromium may have no voice: a stand-in records what would be said, and when.
  window.__spoken = [];
  const voices = [{name: "Fake English", lang: "en-US"}, {name: "Fake French", lang: "fr-FR"}];
  window.SpeechSynthesisUtterance = class {
    constructor(text) { this.text = text; this.lang = ""; this.voice = null; }
  };
  const synth = {
    current: null,
    getVoices: () => voices,
    addEventListener() {},
    speak(utterance) {
      window.__spoken.push({
        text: utterance.text, lang: utterance.lang,
        voice: utterance.voice ? utterance.voice.name : null,
        highlighted: Array.from(document.querySelectorAll(".tw-reading"))
          .map((el) => el.dataset.place || el.className)});
      this.current = utterance;
      setTimeout(() => utterance.onstart && utterance.onstart(), 5);
      utterance.timer = setTimeout(() => utterance.onend && utterance.onend(),
                                   window.__speakMs || 300);
    },
    cancel() {
      if (this.current) {
        clearTimeout(this.current.timer);
        if (this.current.onerror) this.current.onerror({error: "canceled"});
      }
    },
  };
  Object.defineProperty(window, "speechSynthesis", {value: synth, configurable: true});
})();"""
PAGES = ("Mia woke up early.", "Mia built a sandcastle.", "Mia dreamed of boats.")


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    """(url, settings, book): an app without sign-in whose one user has a finished book in
    French, with a dedication and a closing line (pictures made without a model)."""
    from conftest import make_picture

    from pipeline.book import BookStore
    from pipeline.story import Page

    settings = Settings(base_model=str(tiny_model_dir), vae="", device="cpu", resolution=64,
                        data_dir=tmp_path_factory.mktemp("reading") / "data",
                        require_login="never")
    store = BookStore(settings, settings.local_user)
    book = store.create("Le château de Mia", "pastel", 1, [Page(t, t) for t in PAGES])
    for number in (1, 2, 3):
        book = store.add_illustration(book.id, number, make_picture(96, 96, number),
                                      seed=number, prompt="p")
    book = store.set_words(book.id, dedication="Pour Mia, de Mamie", closing="Fin.",
                           language="fr")
    with served_app(settings) as address:
        yield address, settings, book


def _spoken(tab, count: int) -> list:
    """What the page has said, once it has said `count` things (polled from here: the HTML
    book's policy allows no script evaluated from a string, Playwright's waits included)."""
    for _ in range(300):
        spoken = tab.evaluate("window.__spoken")
        if len(spoken) >= count:
            return spoken
        tab.wait_for_timeout(100)
    raise AssertionError(f"said only {tab.evaluate('window.__spoken')}")


def test_the_html_book_reads_itself_aloud(page, finished, tmp_path):
    from playwright.sync_api import expect

    from pipeline.book import BookStore
    from pipeline.export import export_html

    _, settings, book = finished
    out = export_html(BookStore(settings, settings.local_user), book, tmp_path / "book.html").path
    real = page.context.browser.new_page()  # the browser's own speech synthesis, as it is
    real.goto(out.as_uri())
    expect(real.get_by_role("button", name="Read to me")).to_be_visible()
    assert real.evaluate("typeof window.speechSynthesis.speak === 'function'")
    real.close()

    context = page.context.browser.new_context()
    context.add_init_script(SPEECH_STUB)
    tab = context.new_page()
    tab.goto(out.as_uri())
    tab.get_by_role("button", name="Read to me").click()
    expect(tab.get_by_role("button", name="Stop reading")).to_be_visible()
    spoken = _spoken(tab, 6)
    assert [s["text"] for s in spoken] == ["Le château de Mia", "Pour Mia, de Mamie", *PAGES,
                                           "Fin."]
    assert {(s["lang"], s["voice"]) for s in spoken} == {("fr", "Fake French")}
    kinds = ["cover", "dedication", "story", "story", "story", "closing"]
    for said, kind in zip(spoken, kinds):  # the page being read is the one highlighted
        assert said["highlighted"] == [f"page {kind} tw-reading"], said
    expect(tab.get_by_role("button", name="Read to me")).to_be_visible()
    expect(tab.locator(".tw-reading")).to_have_count(0)

    tab.evaluate("window.__spoken = []; window.__speakMs = 3000")  # a slow reading, stopped
    tab.get_by_role("button", name="Read to me").click()
    _spoken(tab, 2)
    tab.get_by_role("button", name="Stop reading").click()
    said = len(tab.evaluate("window.__spoken"))
    tab.wait_for_timeout(1000)
    assert len(tab.evaluate("window.__spoken")) == said < 6
    expect(tab.locator(".tw-reading")).to_have_count(0)
    context.close()


def test_the_gallery_reads_the_book_aloud_and_shows_it_as_spreads(page, finished):
    from playwright.sync_api import expect

    url, _, _ = finished
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(SPEECH_STUB)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(url)
    open_tab(tab, "4 · Gallery")
    tab.get_by_role("img", name="Le château de Mia", exact=True).click()
    expect(tab.locator(".tw-page-text")).to_have_text("")  # no character: no "story about"
    spreads = tab.locator(".tw-spread")
    expect(spreads).to_have_count(5)  # cover; dedication, 1; 2, 3; closing, blank; back
    expect(spreads.nth(1)).to_contain_text("Pour Mia, de Mamie")
    tab.get_by_role("button", name="Read to me").click()
    spoken = _spoken(tab, 6)
    assert [s["text"] for s in spoken] == ["Le château de Mia", "Pour Mia, de Mamie", *PAGES,
                                           "Fin."]
    assert [s["highlighted"] for s in spoken] == [[str(n)] for n in range(6)]
    assert {(s["lang"], s["voice"]) for s in spoken} == {("fr", "Fake French")}
    expect(tab.get_by_text("Back cover", exact=True).first).to_be_visible()  # read to the end
    expect(tab.get_by_role("button", name="Read to me")).to_be_visible()
    shoot(tab, "6-read-aloud")
    context.close()


def test_the_story_tab_changes_the_pages_in_place(page, finished):
    from playwright.sync_api import expect

    url, settings, book = finished
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(url)
    open_tab(tab, "3 · Story")
    expect(tab.get_by_text("Le château de Mia: every page has a picture")).to_be_visible()
    tab.get_by_text("Change the book").click()
    expect(tab.get_by_label("Dedication, after the cover")).to_have_value("Pour Mia, de Mamie")
    tab.get_by_role("gridcell", name=PAGES[1], exact=True).first.click()
    words = tab.get_by_label("The page's words")
    expect(words).to_have_value(PAGES[1])
    words.fill("Mia built a castle with a red flag.")
    tab.get_by_role("button", name="Save the words").click()
    expect(tab.get_by_role("gridcell", name="Mia built a castle with a red flag.")).to_have_count(2)
    tab.get_by_label("Move it to page").fill("1")
    tab.get_by_role("button", name="Move the page").click()
    expect(tab.get_by_text("Page 2 is now page 1.")).to_be_visible()
    expect(tab.get_by_role("row").nth(1)).to_contain_text("Mia built a castle with a red flag.")
    expect(tab.get_by_label("Page", exact=True)).to_have_value("1")  # the page followed
    shoot(tab, "7-story-edit")
    context.close()
