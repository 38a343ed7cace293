import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import BOOK_TEXTS, make_picture
from PIL import Image
from pypdf import PdfReader

from pipeline import cli
from pipeline.book import BookStore
from pipeline.export import (TRIMS, book_sides, export_book, export_html, export_pdf, file_name,
                             read_aloud_script, spreads, story_about)
from pipeline.export.upscale import Resize
from pipeline.progress import Progress
from pipeline.story import Page

ROOT = Path(__file__).resolve().parent.parent


def _words(text: str) -> str:
    return " ".join(text.split())


def test_screen_pdf_has_a_cover_a_square_page_per_story_page_and_a_back_cover(
        illustrated_book, tmp_path):
    store, book = illustrated_book
    seen = []
    done = export_pdf(store, book, tmp_path / "book.pdf", on_progress=seen.append)
    assert done.path == tmp_path / "book.pdf" and done.pages == 5 and done.text_only == ()
    assert done.dropped == "安晚🍪" and done.pictures == "as drawn"
    assert seen[-1] == Progress(3, 3, "page", "laying out the PDF")

    reader = PdfReader(done.path)
    assert len(reader.pages) == 5
    assert _words(reader.pages[4].extract_text()) == \
        "Mia & Grandma’s Cookie Night A story about Mia and Grandma"
    assert reader.metadata.title == "Mia & Grandma’s Cookie Night"
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == (612, 612)
    cover = _words(reader.pages[0].extract_text())
    assert "Mia & Grandma’s Cookie Night" in cover and "A story about Mia and Grandma" in cover
    expected = [
        "Mia and Grandma baked “magic” cookies: crème brûlée, of course!",
        "Grandma’s dog didn’t like the oven’s noise. “Woof!” said Rex, naïve and façade-free.",
        "That night Mia whispered «Bonne nuit, mamie» … and fell asleep.",
    ]
    for number, (page, text) in enumerate(zip(reader.pages[1:4], expected), start=1):
        extracted = _words(page.extract_text())
        assert extracted == f"{text} {number}"
        assert "🍪" not in extracted and "晚" not in extracted


def test_pdf_embeds_pictures_at_full_resolution(illustrated_book, tmp_path):
    store, book = illustrated_book
    book = store.add_illustration(book.id, 2, make_picture(1152, 896, 7), seed=7, prompt="wide")
    reader = PdfReader(export_pdf(store, book, tmp_path / "book.pdf").path)
    sizes = [[image.image.size for image in page.images] for page in reader.pages]
    assert sizes == [[(1024, 1024)], [(1024, 1024)], [(1152, 896)], [(1024, 1024)], []]
    stored = Path(store.image_path(book, book.page(2).image))
    embedded = reader.pages[2].images[0].image.convert("RGB")
    with Image.open(stored) as original:
        assert embedded.tobytes() == original.convert("RGB").tobytes()


def test_chosen_cover_is_used(illustrated_book, tmp_path):
    store, book = illustrated_book
    book = store.add_illustration(book.id, 3, make_picture(640, 480, 5), seed=5, prompt="x",
                                  choose=False)
    book = store.set_cover(book.id, "images/p03-5.png")
    reader = PdfReader(export_pdf(store, book, tmp_path / "book.pdf").path)
    assert [image.image.size for image in reader.pages[0].images] == [(640, 480)]


def test_a_wide_cover_picture_sits_midway_between_the_title_and_the_line_below(
        illustrated_book, tmp_path):
    store, book = illustrated_book
    book = store.add_illustration(book.id, 3, make_picture(1152, 640, 5), seed=5, prompt="x",
                                  choose=False)
    cover = PdfReader(export_pdf(store, store.set_cover(book.id, "images/p03-5.png"),
                                 tmp_path / "book.pdf").path).pages[0]
    baselines = []
    cover.extract_text(visitor_text=lambda text, cm, tm, font, size: baselines.append(
        (tm[5], size)) if text.strip() else None)
    title_bottom = min(y for y, size in baselines if size > 20)  # the title's last line
    about_top = max(y + size for y, size in baselines if size <= 20)  # "A story about..."
    placed = re.search(rb"([\d.]+) 0 0 ([\d.]+) ([\d.]+) ([\d.]+) cm /I\d+ Do",
                       cover.get_contents().get_data())
    height, bottom = float(placed[2]), float(placed[4])
    above, below = title_bottom - (bottom + height), bottom - about_top
    assert abs(above - below) < 20  # (measured from the title baseline, not its line box)


def test_unillustrated_pages_stop_the_export_unless_draft(book_settings, tmp_path):
    store = BookStore(book_settings, "alice")
    pages = [Page(text, "scene", ("Mia",)) for text in BOOK_TEXTS]
    book = store.create("Half done", "ink", 1, pages)
    book = store.add_illustration(book.id, 2, make_picture(256, 256, 1), seed=1, prompt="p")
    with pytest.raises(ValueError, match=r"'Half done': pages 1, 3 not illustrated yet"):
        export_pdf(store, book, tmp_path / "book.pdf")
    assert not (tmp_path / "book.pdf").exists()

    done = export_pdf(store, book, tmp_path / "book.pdf", draft=True)
    assert done.text_only == (1, 3) and done.pages == 5
    reader = PdfReader(done.path)
    assert [len(page.images) for page in reader.pages] == [1, 0, 1, 0, 0]
    assert "crème brûlée" in _words(reader.pages[1].extract_text())
    with pytest.raises(ValueError, match="page 1 not illustrated"):
        export_html(store, store.create("None", "ink", 1, pages[:1]), tmp_path / "b.html")


def test_text_too_long_for_a_page_is_a_clear_error(book_settings, tmp_path):
    store = BookStore(book_settings, "alice")
    book = store.create("Wordy", "ink", 1, [Page("word " * 1200, "scene")])
    book = store.add_illustration(book.id, 1, make_picture(64, 64, 1), seed=1, prompt="p")
    with pytest.raises(ValueError, match="page 1: the text is too long"):
        export_pdf(store, book, tmp_path / "book.pdf")
    assert not (tmp_path / "book.pdf").exists()


def test_longest_allowed_page_fits(book_settings, tmp_path):
    store = BookStore(book_settings, "alice")
    text = ("Mia’s kite flew over the hills and far away. " * 40)[:book_settings.max_page_chars]
    book = store.create("Long", "ink", 1, [Page(text, "scene")])
    book = store.add_illustration(book.id, 1, make_picture(64, 64, 1), seed=1, prompt="p")
    reader = PdfReader(export_pdf(store, book, tmp_path / "book.pdf").path)
    assert _words(reader.pages[1].extract_text()) == _words(text) + " 1"


def test_hostile_text_is_escaped_in_html(book_settings, tmp_path):
    store = BookStore(book_settings, "alice")
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    book = store.create(evil, "ink", 1, [Page(f"Hi {evil}\nsecond “line” 🍪", "a <b>scene</b>",
                                              ("<i>Mia</i>",))])
    book = store.add_illustration(book.id, 1, make_picture(32, 32, 1), seed=1, prompt="p")
    done = export_html(store, book, tmp_path / "book.html")
    document = done.path.read_text(encoding="utf-8")
    assert document.count("<script") == 1  # read-aloud's own, allowed by its hash
    assert "onerror=\"" not in document and "<i>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "A story about &lt;i&gt;Mia&lt;/i&gt;" in document
    assert "second “line” 🍪" in document and "<br>" in document
    assert document.count('src="data:image/png;base64,') == 2
    assert "default-src 'none'" in document and done.pages == 3


def test_story_about_and_file_name(illustrated_book):
    assert story_about([]) == ""
    assert story_about(["Mia"]) == "A story about Mia"
    assert story_about(["Mia", "Grandma"]) == "A story about Mia and Grandma"
    assert story_about(["Mia", "Leo", "Rex"]) == "A story about Mia, Leo and Rex"
    _, book = illustrated_book
    assert file_name(book) == "mia-grandmas-cookie-night.pdf"
    assert file_name(replace(book, title="../../etc/passwd"), ".html") == "etc-passwd.html"


def test_export_format_follows_the_suffix(illustrated_book, tmp_path):
    store, book = illustrated_book
    assert export_book(store, book, tmp_path / "b.HTML").path.read_text().startswith("<!DOCTYPE")
    with pytest.raises(ValueError, match="b.docx: can't tell the format"):
        export_book(store, book, tmp_path / "b.docx")


def test_cli_export(illustrated_book, book_settings, tmp_path, capsys):
    store, book = illustrated_book
    common = ["--data-dir", str(book_settings.data_dir), "--user", "alice"]
    assert cli.main(["export", book.id, "--out", str(tmp_path / "b.pdf"), "--json", *common]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"path": str(tmp_path / "b.pdf"), "pages": 5, "text_only": [],
                      "dropped": "安晚🍪", "pictures": "as drawn"}
    assert len(PdfReader(tmp_path / "b.pdf").pages) == 5
    assert cli.main(["export", book.id, "--out", str(tmp_path / "b.html"), *common]) == 0
    assert "Saved" in capsys.readouterr().out and (tmp_path / "b.html").is_file()
    assert cli.main(["export", book.id, "--out", str(tmp_path / "c.pdf"),
                     "--data-dir", str(book_settings.data_dir), "--user", "bob"]) == 1
    assert "no book with id" in capsys.readouterr().err


def test_books_and_export_never_import_torch():
    code = ("import sys, pipeline.book, pipeline.export; "
            "print(sorted(m for m in ('torch', 'diffusers', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("title, printed", [
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("../../etc/passwd", "../../etc/passwd"),
    ("", "Untitled story"),
    ("סיפור על מיה 🍪", ""),
    ("Ünïcödé “quotes” and a very long title " * 5, None),
])
def test_hostile_titles_export_cleanly(book_settings, tmp_path, title, printed):
    store = BookStore(book_settings, "alice")
    book = store.create(title, "ink", 1, [Page("Hello.", "scene", ("Mia",))])
    book = store.add_illustration(book.id, 1, make_picture(64, 64, 1), seed=1, prompt="p")
    done = export_pdf(store, book, tmp_path / "book.pdf")
    reader = PdfReader(done.path)
    assert len(reader.pages) == 3 and reader.metadata.title == book.title
    cover = _words(reader.pages[0].extract_text())
    assert cover == _words(f"{printed if printed is not None else book.title} "
                           "A story about Mia")
    assert set(done.dropped) == set(book.title) - set(cover) - {" "}
    html_text = export_html(store, book, tmp_path / "book.html").path.read_text()
    assert "<script>alert" not in html_text and html_text.count("<script") == 1


def test_emoji_sequences_and_long_words_print_cleanly(book_settings, tmp_path):
    store = BookStore(book_settings, "alice")
    text = "Family 👨‍👩‍👧 time 👋🏽 in France 🇫🇷 ❤️ ok\nSuper" + "long" * 80 + " end"
    book = store.create("W" * 200, "ink", 1, [Page(text, "scene")])
    book = store.add_illustration(book.id, 1, make_picture(64, 64, 1), seed=1, prompt="p")
    done = export_pdf(store, book, tmp_path / "book.pdf")
    assert set(done.dropped) == set("👨👩👧👋🇫🇷❤")
    page = PdfReader(done.path).pages[1].extract_text()
    assert page.startswith("Family time in France ok\nSuper")
    assert "".join(page.split()) == "FamilytimeinFranceokSuper" + "long" * 80 + "end1"


def test_a_lost_picture_file_is_named(illustrated_book, tmp_path):
    store, book = illustrated_book
    store.image_path(book, book.page(2).image).unlink()
    for out in ("book.pdf", "book.html"):
        with pytest.raises(ValueError, match=r"picture of page 2 \(images/p02-1236.png\) is "
                                             "missing"):
            export_book(store, book, tmp_path / out)
        assert not (tmp_path / out).exists()


def _placed(page) -> list[tuple[float, float, int, int]]:
    """Each picture drawn on a PDF page: its printed width and height in points and the
    pixel size of the embedded image (read with pypdf)."""
    objects = page["/Resources"].get("/XObject", {})
    found = []
    for match in re.finditer(rb"([\d.]+) 0 0 ([\d.]+) [\d.]+ [\d.]+ cm /(I\d+) Do",
                             page.get_contents().get_data()):
        image = objects["/" + match[3].decode()]
        found.append((float(match[1]), float(match[2]), int(image["/Width"]),
                      int(image["/Height"])))
    return found


def _boxes(page) -> dict[str, list[float]]:
    return {name: [round(float(v), 2) for v in getattr(page, name)]
            for name in ("mediabox", "trimbox", "bleedbox")}


@pytest.fixture
def finished_book(illustrated_book):
    """The illustrated book with a dedication, a closing line, a wide picture on page 2."""
    store, book = illustrated_book
    book = store.add_illustration(book.id, 2, make_picture(1152, 896, 7), seed=7, prompt="wide")
    book = store.set_words(book.id, dedication="For Mia, on her fourth birthday – love, Grandma",
                           closing="The end. Bonne nuit, ma chérie!", language="fr")
    return store, book


@pytest.mark.parametrize("trim, bleed, size", [
    ("8.5x8.5", False, (612, 612)),
    ("8.5x8.5", True, (612, 612)),
    ("8x10", True, (576, 720)),
    ("a4-landscape", False, (841.89, 595.28)),
    ("a4-landscape", True, (841.89, 595.28)),
])
def test_print_pdfs_have_the_trim_the_boxes_and_300_dpi_pictures(finished_book, tmp_path, trim,
                                                                 bleed, size):
    store, book = finished_book
    done = export_pdf(store, book, tmp_path / "book.pdf", trim=trim, bleed=bleed,
                      upscaler=Resize())
    reader = PdfReader(done.path)
    # cover, dedication, 3 pages, closing line: six, so the back cover needs a blank before it
    assert len(reader.pages) == done.pages == 8
    b = 9.0 if bleed else 0.0
    width, height = size
    for page in reader.pages:
        assert _boxes(page) == {
            "mediabox": [0, 0, round(width + 2 * b, 2), round(height + 2 * b, 2)],
            "trimbox": [b, b, round(width + b, 2), round(height + b, 2)],
            "bleedbox": [0, 0, round(width + 2 * b, 2), round(height + 2 * b, 2)]}
    placed = [_placed(page) for page in reader.pages]
    assert [len(p) for p in placed] == [1, 0, 1, 1, 1, 0, 0, 0]
    for printed_w, printed_h, pixels_w, pixels_h in sum(placed, []):
        assert pixels_w / (printed_w / 72) >= 300 and pixels_h / (printed_h / 72) >= 300
        assert pixels_w / (printed_w / 72) < 301  # enlarged to the size it is printed at
        assert reader.pages[0]["/Resources"]["/XObject"]["/I1"]["/Filter"] == "/DCTDecode"
    wide = placed[3][0]
    assert abs(wide[2] / wide[3] - 1152 / 896) < 0.01  # its shape kept
    texts = [_words(page.extract_text()) for page in reader.pages]
    assert texts[1] == "For Mia, on her fourth birthday – love, Grandma"
    assert texts[2] == "Mia and Grandma baked “magic” cookies: crème brûlée, of course! 1"
    assert texts[4] == "That night Mia whispered «Bonne nuit, mamie» … and fell asleep. 3"
    assert texts[5:] == ["The end. Bonne nuit, ma chérie!", "",
                         "Mia & Grandma’s Cookie Night A story about Mia and Grandma"]
    assert reader.metadata["/Trim"] == TRIMS[trim].label
    assert reader.metadata["/Bleed"] == ("0.125 in" if bleed else "none")
    assert reader.metadata["/Pictures"] == "300 dpi at printed size: Lanczos resize (Pillow)"
    assert done.pictures == reader.metadata["/Pictures"]
    assert reader.trailer["/Root"]["/Lang"] == "fr"


def test_the_screen_pdf_keeps_pictures_as_drawn_and_needs_no_blank_page(finished_book,
                                                                        tmp_path):
    store, book = finished_book
    reader = PdfReader(export_pdf(store, book, tmp_path / "book.pdf").path)
    assert len(reader.pages) == 7  # cover, dedication, 3 pages, closing, back cover
    assert [[(w, h) for *_, w, h in _placed(page)] for page in reader.pages] == [
        [(1024, 1024)], [], [(1024, 1024)], [(1152, 896)], [(1024, 1024)], [], []]
    assert _boxes(reader.pages[0])["trimbox"] == [0, 0, 612, 612]
    assert reader.metadata["/Trim"] == TRIMS["screen"].label
    assert reader.metadata["/Pictures"] == "as drawn"
    with pytest.raises(ValueError, match="a bleed is for print sizes"):
        export_pdf(store, book, tmp_path / "bleed.pdf", bleed=True)
    with pytest.raises(ValueError, match="unknown trim 'a5'; choose one of: 8.5x8.5, 8x10, "
                                         "a4-landscape, screen"):
        export_pdf(store, book, tmp_path / "a5.pdf", trim="a5")
    with pytest.raises(ValueError, match="trim sizes and bleed are for PDFs"):
        export_book(store, book, tmp_path / "book.html", trim="8x10")
    assert not any(tmp_path.glob("bleed.pdf")) and not any(tmp_path.glob("a5.pdf"))


def test_the_book_pages_in_order_and_as_spreads(finished_book):
    _, book = finished_book
    sides = book_sides(book)
    assert [s.kind for s in sides] == ["cover", "dedication", "story", "story", "story",
                                       "closing", "back"]
    assert [s.label for s in sides] == ["Cover", "Dedication", "Page 1", "Page 2", "Page 3",
                                        "Closing words", "Back cover"]
    assert sides[0].spoken == "Mia & Grandma’s Cookie Night. A story about Mia and Grandma"
    assert sides[-1].spoken == "" and sides[2].picture == book.page(1).image
    printed = book_sides(book, printed=True)
    assert [s.kind for s in printed][-2:] == ["blank", "back"]
    pairs = [(left and left.label, right and right.label) for left, right in spreads(printed)]
    assert pairs == [(None, "Cover"), ("Dedication", "Page 1"), ("Page 2", "Page 3"),
                     ("Closing words", "Blank page"), ("Back cover", None)]
    assert spreads(book_sides(book)[:2]) == [(None, sides[0]), (sides[1], None)]


def test_the_html_book_reads_itself_aloud_in_its_language(finished_book, tmp_path):
    import base64
    import hashlib

    store, book = finished_book
    done = export_html(store, book, tmp_path / "book.html")
    document = done.path.read_text(encoding="utf-8")
    assert done.pages == 7 and document.startswith('<!DOCTYPE html>\n<html lang="fr">')
    assert '<button id="tw-read" type="button" hidden>Read to me</button>' in document
    read = re.findall(r'<section class="page (\w+)"(?: data-read="([^"]*)")?>', document)
    assert read == [
        ("cover", "Mia &amp; Grandma’s Cookie Night. A story about Mia and Grandma"),
        ("dedication", "For Mia, on her fourth birthday – love, Grandma"),
        ("story", "Mia and Grandma baked “magic” cookies: crème brûlée, of course! 🍪"),
        ("story", "Grandma’s dog didn’t like the oven’s noise. “Woof!” said Rex, naïve and "
                  "façade-free."),
        ("story", "That night Mia whispered «Bonne nuit, mamie» … and fell asleep. 晚安"),
        ("closing", "The end. Bonne nuit, ma chérie!"), ("back", "")]
    script = re.search(r"<script>(.*)</script>", document, re.S)[1]
    assert script.startswith(read_aloud_script())
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in document  # the one script the page may run


def test_cli_export_trims_and_bleed(illustrated_book, book_settings, tmp_path, capsys):
    store, book = illustrated_book
    common = ["--data-dir", str(book_settings.data_dir), "--user", "alice"]
    assert cli.main(["export", book.id, "--out", str(tmp_path / "b.pdf"), "--trim", "8x10",
                     "--bleed", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Saved {tmp_path / 'b.pdf'} (6 pages; pictures: 300 dpi at printed "
                          "size: Lanczos resize (Pillow): no GPU here for the super-resolution "
                          "model).")
    page = PdfReader(tmp_path / "b.pdf").pages[1]
    assert _boxes(page)["trimbox"] == [9, 9, 585, 729]
    assert cli.main(["export", book.id, "--out", str(tmp_path / "c.pdf"), "--trim", "a5",
                     *common]) == 1
    assert "unknown trim 'a5'" in capsys.readouterr().err
