"""A finished book as a file: a PDF to print or to read on a screen (`pdf`), or one HTML file
that can read itself aloud (`html`); the pages they both have (`pages`); pictures enlarged for
print (`upscale`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..book import Book, BookStore
from ..progress import ProgressFn
from ..store import slugify
from .html import export_html, read_aloud_script
from .pages import BookSide, book_sides, named, spreads, story_about
from .pdf import TRIMS, Exported, Trim, export_pdf, get_trim
from .upscale import Upscaler

__all__ = ["BookSide", "Exported", "TRIMS", "Trim", "Upscaler", "book_sides", "export_book",
           "export_html", "export_pdf", "file_name", "get_trim", "named", "read_aloud_script",
           "spreads", "story_about"]


def file_name(book: Book, suffix: str = ".pdf") -> str:
    """A safe download name for the book ("the-dragon-picnic.pdf"): a slug, never the raw title."""
    return slugify(book.title, max_length=60) + suffix


def export_book(store: BookStore, book: Book, out: Path, *, draft: bool = False,
                trim: str = "screen", bleed: bool = False, upscaler: Optional[Upscaler] = None,
                on_progress: Optional[ProgressFn] = None) -> Exported:
    """Export to PDF (of this trim, with or without bleed) or HTML, chosen by the suffix of
    `out`."""
    suffix = Path(out).suffix.lower()
    if suffix == ".pdf":
        return export_pdf(store, book, out, draft=draft, trim=trim, bleed=bleed,
                          upscaler=upscaler, on_progress=on_progress)
    if suffix == ".html":
        if trim != "screen" or bleed:
            raise ValueError("trim sizes and bleed are for PDFs; an HTML book fits any screen")
        return export_html(store, book, out, draft=draft)
    raise ValueError(f"{Path(out).name}: can't tell the format; name the file .pdf or .html")
