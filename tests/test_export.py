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
from pipeline.export import export_book, export_html, export_pdf, file_name, story_about
from pipeline.progress import Progress
from pipeline.story import Page

ROOT = Path(__file__).resolve().parent.parent


def _words(text: str) -> str:
    return " ".join(text.split())


def test_pdf_has_a_cover_and_one_square_page_per_story_page(illustrated_book, tmp_path):
    store, book = illustrated_book
    seen = []
    done = export_pdf(store, book, tmp_path / "book.pdf", on_progress=seen.append)
    assert done.path == tmp_path / "book.pdf" and done.pages == 4 and done.text_only == ()
    assert done.dropped == "安晚🍪"
    assert seen[-1] == Progress(3, 3, "page", "laying out the PDF")

    reader = PdfReader(done.path)
    assert len(reader.pages) == 4
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
    for number, (page, text) in enumerate(zip(reader.pages[1:], expected), start=1):
        extracted = _words(page.extract_text())
        assert extracted == f"{text} {number}"
        assert "🍪" not in extracted and "晚" not in extracted


def test_pdf_embeds_pictures_at_full_resolution(illustrated_book, tmp_path):
    store, book = illustrated_book
    book = store.add_illustration(book.id, 2, make_picture(1152, 896, 7), seed=7, prompt="wide")
    reader = PdfReader(export_pdf(store, book, tmp_path / "book.pdf").path)
    sizes = [[image.image.size for image in page.images] for page in reader.pages]
    assert sizes == [[(1024, 1024)], [(1024, 1024)], [(1152, 896)], [(1024, 1024)]]
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
    assert done.text_only == (1, 3) and done.pages == 4
    reader = PdfReader(done.path)
    assert [len(page.images) for page in reader.pages] == [1, 0, 1, 0]
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
    assert "<script" not in document and "onerror=\"" not in document and "<i>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "A story about &lt;i&gt;Mia&lt;/i&gt;" in document
    assert "second “line” 🍪" in document and "<br>" in document
    assert document.count('src="data:image/png;base64,') == 2
    assert "default-src 'none'" in document and done.pages == 2


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
    assert result == {"path": str(tmp_path / "b.pdf"), "pages": 4, "text_only": [],
                      "dropped": "安晚🍪"}
    assert len(PdfReader(tmp_path / "b.pdf").pages) == 4
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
    assert len(reader.pages) == 2 and reader.metadata.title == book.title
    cover = _words(reader.pages[0].extract_text())
    assert cover == _words(f"{printed if printed is not None else book.title} "
                           "A story about Mia")
    assert set(done.dropped) == set(book.title) - set(cover) - {" "}
    html_text = export_html(store, book, tmp_path / "book.html").path.read_text()
    assert "<script>" not in html_text


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
