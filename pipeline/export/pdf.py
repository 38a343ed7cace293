"""The book as a PDF: to print (a print-on-demand trim size, pictures at 300 dpi, page boxes a
print service reads, an optional bleed) or to read on a screen (square pages, pictures as drawn).

The pages are those of `pages.book_sides`: the cover (title, a picture, "A story about Mia and
Grandma"), the dedication, one page per story page (its picture above its text, or beside it on
a landscape page), the closing line and the back cover. Text is set in Andika, an open font made
for beginning readers (assets/fonts, SIL Open Font License). Characters the font lacks (emoji,
CJK, Hebrew, Arabic) are left out and listed in the result, never a crash. Pages not illustrated
yet stop the export with a message naming them, unless `draft=True`, which sets them as
text-only pages (for proofreading).

Print: each picture is enlarged (upscale.py) to 300 dpi at exactly the size it is printed, and
embedded as a JPEG (quality 95, no chroma subsampling); TrimBox is the page as cut and BleedBox
and MediaBox reach 0.125 in beyond it with `bleed`; the metadata says which trim, which bleed and
how the pictures were enlarged. Everything printed stays 0.625 in inside the trim.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Optional, Union

from PIL import Image

from ..book import Book, BookStore
from ..progress import Progress, ProgressFn
from ..store import atomic_write_bytes
from .pages import BookSide, book_sides
from . import typeset
from .typeset import INK, LEADING, SOFT_INK, TEXT_SIZES
from .upscale import Upscaler, choose_upscaler, print_size

DPI = 300  # pictures' resolution at their printed size, in print trims
BLEED = 9.0  # 0.125 in, in points: what print services ask beyond the trim
MARGIN = 45.0  # 0.625 in inside the trim on every side: safe for home printers and trimming
GAP = 20.0  # between picture and text
MIN_PICTURE = 0.55  # of the content's shorter side: text shrinks before the picture does
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Trim:
    """A page size: `width` x `height` points as cut. Print trims get 300 dpi pictures."""

    name: str
    label: str
    width: float
    height: float
    print_grade: bool = True


TRIMS = {trim.name: trim for trim in (
    Trim("8.5x8.5", "8.5 x 8.5 in square", 612.0, 612.0),
    Trim("8x10", "8 x 10 in portrait", 576.0, 720.0),
    Trim("a4-landscape", "A4 landscape (297 x 210 mm)", 841.89, 595.28),
    Trim("screen", "8.5 x 8.5 in square, pictures as drawn, for reading on a screen", 612.0,
         612.0, print_grade=False),
)}


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the file, its page count, pages set without a picture, the
    characters the book font can't draw (left out of the PDF), and how the pictures were made
    ready ("as drawn", or the upscaler's name)."""

    path: Path
    pages: int
    text_only: tuple[int, ...]
    dropped: str
    pictures: str = "as drawn"


@dataclass(frozen=True)
class _Frame:
    """Where things go on a page of this trim, with or without bleed, in points."""

    trim: Trim
    bleed: float

    @property
    def size(self) -> tuple[float, float]:
        return self.trim.width + 2 * self.bleed, self.trim.height + 2 * self.bleed

    @property
    def left(self) -> float:
        return self.bleed + MARGIN

    @property
    def top(self) -> float:
        return self.bleed + MARGIN

    @property
    def bottom(self) -> float:
        return self.bleed + self.trim.height - MARGIN

    @property
    def width(self) -> float:  # of the content
        return self.trim.width - 2 * MARGIN

    @property
    def height(self) -> float:
        return self.trim.height - 2 * MARGIN

    @property
    def centre(self) -> float:
        return self.bleed + self.trim.width / 2


def get_trim(name: str) -> Trim:
    """A trim by name, or an error listing them."""
    if name not in TRIMS:
        raise ValueError(f"unknown trim {name!r}; choose one of: {', '.join(TRIMS)}")
    return TRIMS[name]


def export_pdf(store: BookStore, book: Book, out: Path, *, draft: bool = False,
               trim: str = "screen", bleed: bool = False, upscaler: Optional[Upscaler] = None,
               on_progress: Optional[ProgressFn] = None) -> Exported:
    """Write the book as a PDF of this trim; the file appears whole or not at all. `upscaler`
    enlarges the pictures of a print trim (default: the model where there is a GPU)."""
    from fpdf import FPDF

    frame = _Frame(get_trim(trim), BLEED if bleed else 0.0)
    if bleed and not frame.trim.print_grade:
        raise ValueError("a bleed is for print sizes; choose a trim other than screen")
    check_ready(store, book, draft)
    if frame.trim.print_grade:
        upscaler = upscaler or choose_upscaler(store.settings)
    # Andika carries Graphite tables that PDF readers never use; the subsetter drops them
    # with a warning per export, which would only alarm CLI users.
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    pdf = FPDF(unit="pt", format=frame.size)
    pdf.set_auto_page_break(False)
    pdf.set_margins(frame.left, frame.top, frame.left)
    typeset.add_fonts(pdf)
    pdf.set_title(book.title)
    pdf.set_creator("Taleweaver")
    pdf.set_creation_date(datetime.fromisoformat(book.created))
    if book.language:
        pdf.set_lang(book.language)
    pictures = _Pictures(store, book, upscaler if frame.trim.print_grade else None)
    dropped: set[str] = set()

    def printable(text: str) -> str:
        kept, lost = typeset.fit_to_font(text)
        dropped.update(lost)
        return kept

    for side in book_sides(book, printed=frame.trim.print_grade):
        pdf.add_page()
        _draw_side(pdf, frame, side, printable, pictures)
        if side.kind == "story" and on_progress:
            on_progress(Progress(side.number, len(book.pages), "page", "laying out the PDF"))
    data = _with_boxes(bytes(pdf.output()), frame, pictures.made)
    atomic_write_bytes(Path(out), data)
    return Exported(Path(out), pdf.pages_count, book.missing, "".join(sorted(dropped)),
                    pictures.made)


def check_ready(store: BookStore, book: Book, draft: bool) -> None:
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


class _Pictures:
    """The pictures as the PDF embeds them: the stored PNG, or with an upscaler a JPEG at DPI
    for the size it is printed at. `made` says which, for the metadata."""

    def __init__(self, store: BookStore, book: Book, upscaler: Optional[Upscaler]):
        self.store, self.book, self.upscaler = store, book, upscaler
        self.made = "as drawn"

    def size(self, file: str) -> tuple[int, int]:
        with Image.open(self.store.image_path(self.book, file)) as image:
            return image.size

    def source(self, file: str, width: float, height: float) -> Union[Path, BytesIO]:
        path = self.store.image_path(self.book, file)
        if self.upscaler is None:
            return path
        with Image.open(path) as image:
            enlarged = self.upscaler(image, print_size(width, height, DPI))
        self.made = f"{DPI} dpi at printed size: {self.upscaler.name}"
        buffer = BytesIO()
        enlarged.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0,
                      dpi=(DPI, DPI))
        return buffer


def _with_boxes(data: bytes, frame: _Frame, pictures: str) -> bytes:
    """The PDF with each page's TrimBox (the page as cut) and BleedBox set, and metadata
    naming the trim, the bleed and how the pictures were made."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import RectangleObject

    writer = PdfWriter(clone_from=PdfReader(BytesIO(data)))
    width, height = frame.size
    trim = RectangleObject([frame.bleed, frame.bleed, width - frame.bleed, height - frame.bleed])
    for page in writer.pages:
        page.trimbox = trim
        page.bleedbox = RectangleObject([0, 0, width, height])
    writer.add_metadata({
        "/Trim": frame.trim.label,
        "/Bleed": f"{frame.bleed / 72:g} in" if frame.bleed else "none",
        "/Pictures": pictures,
    })
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _draw_side(pdf, frame: _Frame, side: BookSide, printable, pictures: _Pictures) -> None:
    """One page of the book, on the page just added."""
    if side.kind == "cover":
        _cover(pdf, frame, printable(side.title), printable(side.text), side.picture, pictures)
    elif side.kind == "back":
        _back_cover(pdf, frame, printable(side.title), printable(side.text))
    elif side.kind in ("dedication", "closing"):
        _words(pdf, frame, printable(side.text), side.kind)
    elif side.kind == "story":
        _story(pdf, frame, side.number, printable(side.text), side.picture, pictures)


def _picture(pdf, pictures: _Pictures, file: str, left: float, top: float, box_w: float,
             box_h: float, middle: bool = False) -> tuple[float, float]:
    """Draw the picture as large as the box allows, keeping its shape, centred across the box
    and at its top (or in its middle); its width and height."""
    width, height = pictures.size(file)
    scale = min(box_w / width, box_h / height)
    w, h = width * scale, height * scale
    pdf.image(pictures.source(file, w, h), x=left + (box_w - w) / 2,
              y=top + (box_h - h) / 2 if middle else top, w=w, h=h)
    return w, h


def _cover(pdf, frame: _Frame, title: str, about: str, picture: str,
           pictures: _Pictures) -> None:
    size = typeset.title_size(pdf, title, frame.width)
    title_h = typeset.height(pdf, title, size, frame.width, bold=True)
    about_size = 16
    about_h = about_size * LEADING if about else 0.0
    typeset.draw(pdf, title, frame.top, size, frame.width, frame.centre, bold=True)
    if about:
        typeset.draw(pdf, about, frame.bottom - about_h, about_size, frame.width,
                     frame.centre, color=SOFT_INK)
    if picture:
        _picture(pdf, pictures, picture, frame.left, frame.top + title_h + GAP, frame.width,
                 frame.height - title_h - about_h - 2 * GAP, middle=True)


def _back_cover(pdf, frame: _Frame, title: str, about: str) -> None:
    size = typeset.title_size(pdf, title, frame.width) * 0.75
    title_h = typeset.height(pdf, title, size, frame.width, bold=True)
    about_h = typeset.height(pdf, about, 15, frame.width) if about else 0.0
    top = frame.top + (frame.height - title_h - about_h - GAP) / 2
    typeset.draw(pdf, title, top, size, frame.width, frame.centre, bold=True)
    if about:
        typeset.draw(pdf, about, top + title_h + GAP, 15, frame.width, frame.centre,
                     color=SOFT_INK)


def _words(pdf, frame: _Frame, text: str, kind: str) -> None:
    """The dedication (soft, a third of the way down) or the closing line (in the middle)."""
    width = frame.width * 0.75
    size = typeset.fitting_size(pdf, text, width, frame.height, (22, *TEXT_SIZES)) \
        or TEXT_SIZES[-1]
    text_h = typeset.height(pdf, text, size, width)
    share = 0.35 if kind == "dedication" else 0.5
    typeset.draw(pdf, text, frame.top + max(0.0, (frame.height - text_h) * share), size, width,
                 frame.centre, color=SOFT_INK if kind == "dedication" else INK)


def _story(pdf, frame: _Frame, number: int, text: str, picture: str,
           pictures: _Pictures) -> None:
    width = frame.width * 0.9
    if not picture:
        _middle(pdf, frame, number, text, width, frame.centre, "on a printed page")
    elif frame.trim.width > frame.trim.height:
        _beside(pdf, frame, number, text, picture, pictures)
    else:
        size, text_h = _fit_text(pdf, frame, number, text, width, frame.height)
        box = frame.height - text_h - (GAP if text else 0.0)
        _, picture_h = _picture(pdf, pictures, picture, frame.left, frame.top, frame.width, box)
        if text:
            typeset.draw(pdf, text, frame.top + picture_h + GAP, size, width, frame.centre)
    typeset.draw(pdf, str(number), frame.bottom + MARGIN / 2 - 6, 9, 60, frame.centre,
                 color=SOFT_INK)


def _beside(pdf, frame: _Frame, number: int, text: str, picture: str,
            pictures: _Pictures) -> None:
    """A landscape page: the picture on the left, the text beside it, both in the middle."""
    width, height = pictures.size(picture)
    picture_w = width * min(frame.width * 0.6 / width, frame.height / height)
    _picture(pdf, pictures, picture, frame.left, frame.top, picture_w, frame.height, middle=True)
    column = frame.width - picture_w - 1.5 * GAP
    _middle(pdf, frame, number, text, column, frame.left + frame.width - column / 2,
            "beside its picture")


def _middle(pdf, frame: _Frame, number: int, text: str, width: float, centre: float,
            where: str) -> None:
    """The page's text in the middle of the page's height, as large as fits."""
    size = typeset.fitting_size(pdf, text, width, frame.height, TEXT_SIZES)
    if size is None:
        raise ValueError(f"page {number}: the text is too long to fit {where}; shorten it or "
                         "split it over two pages")
    text_h = typeset.height(pdf, text, size, width)
    typeset.draw(pdf, text, frame.top + (frame.height - text_h) / 2, size, width, centre)


def _fit_text(pdf, frame: _Frame, number: int, text: str, width: float,
              height: float) -> tuple[float, float]:
    """The largest font size whose text leaves room for a picture of at least MIN_PICTURE."""
    if not text:
        return TEXT_SIZES[0], 0.0
    smallest = MIN_PICTURE * min(frame.width, frame.height)
    for size in TEXT_SIZES:
        text_h = typeset.height(pdf, text, size, width)
        if height - GAP - text_h >= smallest:
            return size, text_h
    raise ValueError(f"page {number}: the text is too long to fit beside its picture; "
                     "shorten it or split it over two pages")
