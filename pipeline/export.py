"""A book as a printable PDF (square 8.5 x 8.5 in pages) or one self-contained HTML file.

The PDF has a cover (title, a picture, "A story about Mia and Grandma"), then one page per story
page: the illustration, full resolution, above its text, set in Andika, an open font made for
beginning readers (assets/fonts, SIL Open Font License). Characters the font lacks (emoji, CJK,
Hebrew, Arabic) are left out and listed in the result, never a crash. Pages not illustrated yet
stop the export with a message naming them, unless `draft=True`, which sets them as text-only
pages (for proofreading). Free text (titles, page text) is only ever text: escaped in HTML.
"""
from __future__ import annotations

import base64
import html
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from .book import Book, BookStore
from .progress import Progress, ProgressFn
from .store import atomic_write_bytes, slugify

FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
FONT_REGULAR, FONT_BOLD = FONT_DIR / "Andika-Regular.ttf", FONT_DIR / "Andika-Bold.ttf"

PAGE = 612.0  # 8.5 in, in points: a square picture-book page
MARGIN = 45.0  # 0.625 in on every side: safe for home printers and print shops' trim
CONTENT = PAGE - 2 * MARGIN
GAP = 20.0  # between picture and text
LEADING = 1.45  # line height / font size
TEXT_SIZES = (18, 17, 16, 15, 14, 13, 12, 11, 10)  # tried from large to small until it fits
TITLE_SIZES = (36, 32, 28, 24, 21, 18)
CENTRED_LINES = 4  # longer passages are justified
MIN_PICTURE = 0.55 * CONTENT  # text shrinks before the picture gets smaller than this
INK, SOFT_INK = (38, 38, 46), (110, 110, 120)
# Joiners, variation selectors, skin tones: dropped with the emoji they belong to, not listed.
_INVISIBLE = {"Cf", "Mn", "Me", "Sk"}


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the file, its page count, pages set without a picture, and the
    characters the book font can't draw (left out of the PDF)."""

    path: Path
    pages: int
    text_only: tuple[int, ...]
    dropped: str


def story_about(characters: Sequence[str]) -> str:
    """The cover's line: "A story about Mia", "... about Mia and Grandma", "... Mia, Leo and Rex"."""
    names = [n for n in characters if n.strip()]
    if not names:
        return ""
    if len(names) == 1:
        return f"A story about {names[0]}"
    return f"A story about {', '.join(names[:-1])} and {names[-1]}"


def file_name(book: Book, suffix: str = ".pdf") -> str:
    """A safe download name for the book ("the-dragon-picnic.pdf"): a slug, never the raw title."""
    return slugify(book.title, max_length=60) + suffix


def export_book(store: BookStore, book: Book, out: Path, *, draft: bool = False,
                on_progress: Optional[ProgressFn] = None) -> Exported:
    """Export to PDF or HTML, chosen by the suffix of `out`."""
    suffix = Path(out).suffix.lower()
    if suffix == ".pdf":
        return export_pdf(store, book, out, draft=draft, on_progress=on_progress)
    if suffix == ".html":
        return export_html(store, book, out, draft=draft)
    raise ValueError(f"{Path(out).name}: can't tell the format; name the file .pdf or .html")


def export_pdf(store: BookStore, book: Book, out: Path, *, draft: bool = False,
               on_progress: Optional[ProgressFn] = None) -> Exported:
    """Write the book as a print-ready square PDF; the file appears whole or not at all."""
    from fpdf import FPDF

    _check_ready(store, book, draft)
    # Andika carries Graphite tables that PDF readers never use; the subsetter drops them
    # with a warning per export, which would only alarm CLI users.
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    pdf = FPDF(unit="pt", format=(PAGE, PAGE))
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.add_font("Andika", "", FONT_REGULAR)
    pdf.add_font("Andika", "B", FONT_BOLD)
    pdf.set_title(book.title)
    pdf.set_creator("Taleweaver")
    pdf.set_creation_date(datetime.fromisoformat(book.created))
    dropped: set[str] = set()

    def printable(text: str) -> str:
        kept, lost = _fit_to_font(text)
        dropped.update(lost)
        return kept

    cover = book.cover_image
    _cover_page(pdf, printable(book.title), printable(story_about(book.characters)),
                store.image_path(book, cover) if cover else None)
    for number, page in enumerate(book.pages, start=1):
        picture = store.image_path(book, page.image) if page.image else None
        _story_page(pdf, number, printable(page.text), picture)
        if on_progress:
            on_progress(Progress(number, len(book.pages), "page", "laying out the PDF"))
    atomic_write_bytes(Path(out), bytes(pdf.output()))
    return Exported(Path(out), pdf.pages_count, book.missing, "".join(sorted(dropped)))


def export_html(store: BookStore, book: Book, out: Path, *, draft: bool = False) -> Exported:
    """Write the book as one HTML file with its pictures inside (to read or share offline)."""
    _check_ready(store, book, draft)

    def picture(file: str, alt: str) -> str:
        data = base64.b64encode(store.image_path(book, file).read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'

    def text(value: str) -> str:
        return html.escape(value).replace("\n", "<br>")

    cover = book.cover_image
    sections = [
        '<section class="page cover">'
        f'<h1 dir="auto">{text(book.title)}</h1>'
        + (picture(cover, book.title) if cover else "")
        + f'<p class="about" dir="auto">{text(story_about(book.characters))}</p></section>']
    for number, page in enumerate(book.pages, start=1):
        sections.append(
            '<section class="page">'
            + (picture(page.image, page.scene) if page.image else "")
            + f'<p dir="auto">{text(page.text)}</p><footer>{number}</footer></section>')
    document = _HTML_TEMPLATE.format(title=html.escape(book.title), body="\n".join(sections))
    atomic_write_bytes(Path(out), document.encode("utf-8"))
    return Exported(Path(out), len(sections), book.missing, "")


def _check_ready(store: BookStore, book: Book, draft: bool) -> None:
    """Every page illustrated (unless a draft) and every picture the export needs on disk."""
    if book.missing and not draft:
        pages = ", ".join(str(n) for n in book.missing)
        raise ValueError(f"{book.title!r}: page{'s' if len(book.missing) > 1 else ''} {pages} "
                         "not illustrated yet; illustrate them, or export a draft with "
                         "text-only pages")
    needed = [("the cover", book.cover_image)] + [
        (f"page {n}", page.image) for n, page in enumerate(book.pages, start=1)]
    for where, file in needed:
        if file and not store.image_path(book, file).is_file():
            raise ValueError(f"{book.title!r}: the picture of {where} ({file}) is missing; "
                             "draw that page again or choose another of its pictures")


@lru_cache(maxsize=None)
def _font_codepoints(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def _fit_to_font(text: str) -> tuple[str, set[str]]:
    """The text with only characters both book fonts have (line breaks kept), and the rest."""
    covered = _font_codepoints(FONT_REGULAR) & _font_codepoints(FONT_BOLD)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines, lost = [], set()
    for line in text.split("\n"):
        kept, dropping = [], False  # dropping: inside an unprintable character's sequence
        for ch in line:
            invisible = unicodedata.category(ch) in _INVISIBLE
            if ch.isspace():
                kept.append(" ")
                dropping = False
            elif dropping and invisible:
                continue
            elif ord(ch) in covered:
                kept.append(ch)
                dropping = False
            else:
                dropping = True
                if not invisible:
                    lost.add(ch)
        lines.append(" ".join("".join(kept).split()))
    return "\n".join(lines).strip("\n"), lost


def _lines(pdf, text: str, size: float, width: float, bold: bool = False) -> int:
    pdf.set_font("Andika", "B" if bold else "", size)
    return len(pdf.multi_cell(width, size * LEADING, text, dry_run=True, output="LINES"))


def _picture(pdf, path: Path, top: float, box: float, middle: bool = False) -> float:
    """Draw the image as large as a box of side `box` at `top` allows, keeping its shape,
    centred across the page and at the top of the box (or in its middle); its height."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    scale = box / max(width, height)
    w, h = width * scale, height * scale
    pdf.image(path, x=(PAGE - w) / 2, y=top + (box - h) / 2 if middle else top, w=w, h=h)
    return h


def _text(pdf, text: str, top: float, size: float, width: float, bold: bool = False,
          color: tuple[int, int, int] = INK) -> None:
    """Centred lines; a long passage of body text (past CENTRED_LINES) is justified."""
    long = _lines(pdf, text, size, width, bold) > CENTRED_LINES and not bold
    pdf.set_text_color(*color)
    pdf.set_xy((PAGE - width) / 2, top)
    pdf.multi_cell(width, size * LEADING, text, align="J" if long else "C")


def _cover_page(pdf, title: str, about: str, picture: Optional[Path]) -> None:
    pdf.add_page()
    width = CONTENT
    size = next((s for s in TITLE_SIZES if _lines(pdf, title, s, width, bold=True) <= 3),
                TITLE_SIZES[-1])
    title_h = _lines(pdf, title, size, width, bold=True) * size * LEADING
    about_size = 16
    about_h = about_size * LEADING if about else 0.0
    _text(pdf, title, MARGIN, size, width, bold=True)
    if about:
        _text(pdf, about, PAGE - MARGIN - about_h, about_size, width, color=SOFT_INK)
    if picture:
        box = CONTENT - title_h - about_h - 2 * GAP
        _picture(pdf, picture, MARGIN + title_h + GAP, box, middle=True)


def _story_page(pdf, number: int, text: str, picture: Optional[Path]) -> None:
    pdf.add_page()
    width = CONTENT * 0.9
    if picture is None:
        size = next((s for s in TEXT_SIZES
                     if _lines(pdf, text, s, width) * s * LEADING <= CONTENT), None)
        if size is None:
            raise ValueError(f"page {number}: the text is too long to fit on a printed page; "
                             "shorten it or split it over two pages")
        text_h = _lines(pdf, text, size, width) * size * LEADING
        _text(pdf, text, MARGIN + (CONTENT - text_h) / 2, size, width)
    else:
        size, text_h = _fit_text(pdf, number, text, width)
        box = min(CONTENT, CONTENT - text_h - (GAP if text else 0.0))
        picture_h = _picture(pdf, picture, MARGIN, box)
        if text:
            _text(pdf, text, MARGIN + picture_h + GAP, size, width)
    _text(pdf, str(number), PAGE - MARGIN / 2 - 6, 9, 60, color=SOFT_INK)


def _fit_text(pdf, number: int, text: str, width: float) -> tuple[float, float]:
    """The largest font size whose text leaves room for a picture of at least MIN_PICTURE."""
    if not text:
        return TEXT_SIZES[0], 0.0
    for size in TEXT_SIZES:
        text_h = _lines(pdf, text, size, width) * size * LEADING
        if CONTENT - GAP - text_h >= MIN_PICTURE:
            return size, text_h
    raise ValueError(f"page {number}: the text is too long to fit beside its picture; "
                     "shorten it or split it over two pages")


_HTML_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
@page {{ size: 8.5in 8.5in; margin: 0.625in; }}
body {{ margin: 0; background: #f4f1ea; color: #26262e;
       font-family: Andika, "Andika New Basic", "Trebuchet MS", sans-serif; }}
.page {{ box-sizing: border-box; max-width: 8.5in; margin: 2rem auto; padding: 0.625in;
        background: #fff; text-align: center; break-after: page; }}
img {{ max-width: 100%; max-height: 75vh; width: auto; height: auto; }}
h1 {{ font-size: 2.2rem; margin: 0 0 1rem; overflow-wrap: anywhere; }}
p {{ font-size: 1.3rem; line-height: 1.45; margin: 1rem auto 0; max-width: 90%; }}
.about {{ color: #6e6e78; }}
footer {{ color: #6e6e78; font-size: 0.8rem; margin-top: 1rem; }}
@media print {{
  body {{ background: none; }}
  .page {{ margin: 0; padding: 0; max-width: none; min-height: 7.2in; break-inside: avoid;
          display: flex; flex-direction: column; justify-content: center; }}
  img {{ max-height: 4.9in; align-self: center; }}
  p {{ font-size: 14pt; }}
}}
</style>
</head>
<body>
{body}
</body>
</html>
"""
