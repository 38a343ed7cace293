"""Gallery tab: the user's books as covers; open one to read it page by page (or have it read
aloud), see the whole book as spreads, download it as a PDF to print or for a screen (or one HTML
file), delete it.

Public API: /export_book, /delete_book (events) and /list_books, /get_book (gr.api).
"""
import base64
import html
from pathlib import Path
from typing import Optional

import gradio as gr
from PIL import Image

from pipeline.actions import books, likeness
from pipeline.settings import Settings
from ui.auth import Caller, signed_in
from ui.common import (PRIVATE, book_choices, choices, own_choice, picture, progress_bar, public,
                       scratch_folder)

FORMATS = [("PDF", "pdf"), ("HTML, to read in a browser (it can read itself aloud)", "html")]
TRIM_CHOICES = [(f"Print: {trim.label}" if trim.print_grade else "Screen: a small file, pictures "
                 "as drawn", name) for name, trim in books.TRIMS.items()]
NO_PICTURE = (243, 236, 220)  # the cover of a book without pictures yet
READING_CSS = """
.tw-page-text { border-radius: 10px; transition: background 0.3s, box-shadow 0.3s; }
.tw-reading { background: #fff3d1; box-shadow: 0 0 0 4px #f5c04a; }
"""
SPREADS_CSS = """
.tw-spreads { display: flex; flex-direction: column; align-items: center; gap: 16px;
              padding: 8px 0; }
.tw-spread { display: flex; }
.tw-side { position: relative; width: 170px; aspect-ratio: var(--tw-aspect);
           box-sizing: border-box; padding: 10px 10px 18px;
           background: #fff; color: #26262e; display: flex; flex-direction: column;
           align-items: center; justify-content: center; gap: 6px; text-align: center;
           font-size: 10px; line-height: 1.3; overflow: hidden;
           box-shadow: 0 1px 6px rgba(0, 0, 0, 0.18); }
.tw-side + .tw-side { border-left: 1px solid #e4ded2; }
.tw-side.tw-none { background: transparent; box-shadow: none; }
.tw-side img { max-width: 100%; max-height: 62%; object-fit: contain; }
.tw-side .tw-side-title { font-weight: bold; font-size: 12px; }
.tw-side .tw-side-label { position: absolute; bottom: 4px; left: 0; right: 0; color: #8a8a94;
                          font-size: 9px; }
"""
# "Read to me" in the reader: read the page shown, then press Next and read on, until the last.
READ_ALOUD = """() => {
%s
  const reader = window.taleweaverReader;
  const button = document.querySelector("#tw-read-aloud");
  const label = (text) => { if (button) button.textContent = text; };
  if (reader.active()) { reader.stop(); label("Read to me"); return []; }
  const current = () => document.querySelector(".tw-reader .tw-page-text");
  const first = current();
  if (!first || !reader.available()) return [];
  label("Stop reading");
  const next = async (page) => {
    if (page.dataset.last === "true") return null;
    const place = page.dataset.place;
    document.querySelector("#tw-next").click();
    for (let waited = 0; waited < 20000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const now = current();
      if (now && now.dataset.place !== place) return now;
    }
    return null;
  };
  reader.read(first, next, first.lang, () => label("Read to me"));
  return [];
}""".replace("%s", books.read_aloud_script(), 1)


def list_books(caller: Caller) -> list[dict]:
    """Your books, newest first: id, title, pages, pages with a picture, when made."""
    return [row.to_json() for row in books.list_books(caller.settings, caller.user)]


def get_book(caller: Caller, book_id: str) -> dict:
    """One of your books: title, style, seed, and each page's text, scene, characters,
    the prompt it is drawn with, and its pictures (with the seed and prompt of each).

    Args:
        book_id: the book's id
    """
    return books.book_json(caller.settings, caller.user,
                           books.get_book(caller.settings, caller.user, book_id or ""))


def export_book(caller: Caller, book_id: str, format: str = "pdf", draft: bool = False,
                trim: str = "screen", bleed: bool = False, progress=gr.Progress()) -> str:
    """Your book as a PDF (to print at a trim size with pictures at 300 dpi, or for a screen)
    or one HTML file that can read itself aloud.

    Args:
        book_id: the book's id
        format: "pdf" or "html"
        draft: set pages without a picture yet as text-only pages instead of refusing
        trim: the PDF's pages: "8.5x8.5", "8x10" or "a4-landscape" to print, "screen"
            (square 8.5 in pages, pictures as drawn); not used for html
        bleed: add the 0.125 in bleed that print services ask for (print trims; not for html)
    """
    pdf = format != "html"
    done = books.export(caller.settings, caller.user, book_id or "", scratch_folder(),
                        format=format, draft=bool(draft), trim=(trim or "screen") if pdf
                        else "screen", bleed=bool(bleed) and pdf,
                        on_progress=progress_bar(progress))
    if done.dropped:
        gr.Warning("Left out of the PDF (the book font can't print them): "
                   + " ".join(done.dropped))
    return str(done.path)


def delete_book(caller: Caller, book_id: str) -> dict:
    """Delete one of your books with all its pictures.

    Args:
        book_id: the book's id
    """
    return books.delete_book(caller.settings, caller.user, book_id or "").to_json()


def refresh(caller: Optional[Caller], current: Optional[str]):
    rows = books.list_books(caller.settings, caller.user) if caller else []
    covers = [(picture(row.thumbnail) or Image.new("RGB", (256, 256), NO_PICTURE),
               (row.title if row.illustrated == row.pages
                else f"{row.title} ({row.illustrated}/{row.pages} drawn)")
               + (f"\nLikeness: {likeness.summary_line(row.likeness)}"
                  if row.likeness["scored_pages"] else ""))
              for row in rows]
    listed = book_choices(rows)
    dropdown = choices(listed, current, first=False)
    dropdown["visible"] = bool(listed)
    return (gr.update(value=covers, visible=bool(covers)), gr.update(visible=not covers),
            [row.id for row in rows], dropdown)


def pick_cover(ids: list, evt: gr.SelectData):
    return ids[evt.index] if evt.index is not None and evt.index < len(ids) else gr.update()


def read(caller: Optional[Caller], book_id: Optional[str], number: float):
    """One page of the reader: 0 is the cover, then the dedication, the pages, the closing
    line and the back cover. The text says what reading aloud reads, in the book's language."""
    if not book_id or caller is None:
        return gr.update(visible=False), "", None, "", "", 0
    try:
        book = books.get_book(caller.settings, caller.user, book_id)
    except ValueError:
        return gr.update(visible=False), "", None, "", "", 0
    sides = books.book_sides(book)
    number = min(max(int(number or 0), 0), len(sides) - 1)
    side = sides[number]
    heading = f"<h2 class='tw-title'>{html.escape(side.title)}</h2>" if side.title else ""
    shown = picture(books.picture_path(caller.settings, caller.user, book, side.picture)) \
        if side.picture else None
    where = f"Page {side.number} of {len(book.pages)}" if side.kind == "story" else side.label
    lang = f" lang='{html.escape(book.language)}'" if book.language else ""
    body = (f"<div class='tw-page-text'{lang} data-place='{number}' "
            f"data-last='{str(number == len(sides) - 1).lower()}' "
            f"data-read='{html.escape(side.spoken)}'>{html.escape(side.text)}</div>")
    return (gr.update(visible=True), heading, gr.update(value=shown, visible=shown is not None),
            body, where, number)


def preview(caller: Optional[Caller], book_id: Optional[str], trim: Optional[str]) -> str:
    """The whole book as printed, two facing pages at a time, shaped like the chosen trim."""
    if not book_id or caller is None:
        return ""
    try:
        spreads = books.preview(caller.settings, caller.user, book_id)
    except ValueError:
        return ""
    shape = books.TRIMS.get(trim or "", books.TRIMS["screen"])
    rows = "".join(f"<div class='tw-spread'>{_side(left)}{_side(right)}</div>"
                   for left, right in spreads)
    return (f"<div class='tw-spreads' style='--tw-aspect: {shape.width:g} / {shape.height:g}'>"
            f"{rows}</div>")


def _side(shown: Optional[books.PreviewSide]) -> str:
    """One page of a spread: its picture (a small copy, inline), its words, what it is."""
    if shown is None:
        return "<div class='tw-side tw-none'></div>"
    side = shown.side
    parts = [f"<div class='tw-side-title'>{html.escape(side.title)}</div>"] if side.title else []
    if shown.thumbnail:
        parts.append(f"<img src='{_inline(shown.thumbnail)}' alt='{html.escape(side.label)}'>")
    if side.text:
        parts.append(f"<div>{html.escape(side.text)}</div>")
    parts.append(f"<div class='tw-side-label'>{html.escape(side.label)}</div>")
    return f"<div class='tw-side tw-{side.kind}'>{''.join(parts)}</div>"


def _inline(path: Path) -> str:
    """A small picture as a data: URL (the data folder is never served)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def turn(step: int):
    def move(number: float) -> int:
        return max(0, int(number or 0) + step)
    return move


def no_download():
    return gr.update(value=None, visible=False)


def show_deleted(result: dict) -> str:
    return f"Deleted “{html.escape(result['title'])}”." if result else ""


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Gallery tab and its events (inside the app's gr.Tabs)."""
    with gr.Tab("4 · Gallery", id="gallery") as tab:
        none_yet = gr.Markdown("No books yet: write one in the **Story** tab.", visible=False)
        covers = gr.Gallery(label="Your books: click a cover to read it", columns=5,
                            height=330, allow_preview=False, object_fit="cover",
                            fit_columns=False, visible=False, buttons=[])
        ids = gr.State([])
        book_id = own_choice("Open a book", "3f9c1a2b7d4e6f80", visible=False)
        deleted_note = gr.HTML()
        with gr.Column(visible=False, elem_classes="tw-reader") as reader:
            heading = gr.HTML()
            image = gr.Image(show_label=False, interactive=False, height=460,
                             buttons=["fullscreen"])
            text = gr.HTML(css_template=READING_CSS)
            number = gr.State(0)
            with gr.Row(equal_height=True):
                back = gr.Button("◀ Previous", size="sm")
                where = gr.Markdown("Cover", elem_classes="tw-where")
                read_aloud = gr.Button("Read to me", size="sm", elem_id="tw-read-aloud")
                forward = gr.Button("Next ▶", size="sm", elem_id="tw-next")
            with gr.Accordion("The whole book, as it opens", open=True):
                spreads = gr.HTML(css_template=SPREADS_CSS)
            with gr.Row(equal_height=True):
                format_choice = gr.Radio(FORMATS, value="pdf", label="Download as", scale=2)
                trim = gr.Dropdown(TRIM_CHOICES, value="screen", label="PDF pages", scale=3)
                bleed = gr.Checkbox(label="With 0.125 in bleed (for print services)", scale=1)
            with gr.Row(equal_height=True):
                draft = gr.Checkbox(label="Pages without a picture as text only", scale=2)
                export_button = gr.Button("Make the download", variant="primary", scale=1)
            download = gr.File(label="Your book", interactive=False, visible=False)
            delete_button = gr.Button("Delete this book", variant="stop", size="sm")
            deleted = gr.JSON(visible=False)
        cover_page = gr.State(0)
        listing_api, reading_api = signed_in(settings, list_books), signed_in(settings, get_book)
        gr.api(listing_api, **public(listing_api, "list_books"))
        gr.api(reading_api, **public(reading_api, "get_book"))

    reading = [reader, heading, image, text, where, number]
    listing = [covers, none_yet, ids, book_id]
    quiet_read = signed_in(settings, read, quiet=True)
    quiet_refresh = signed_in(settings, refresh, quiet=True)
    quiet_preview = signed_in(settings, preview, quiet=True)
    covers.select(pick_cover, ids, book_id, **PRIVATE).then(
        quiet_read, [book_id, cover_page], reading, **PRIVATE).then(
        no_download, None, download, **PRIVATE).then(quiet_preview, [book_id, trim], spreads,
                                                     **PRIVATE)
    book_id.input(quiet_read, [book_id, cover_page], reading, **PRIVATE).then(
        no_download, None, download, **PRIVATE).then(quiet_preview, [book_id, trim], spreads,
                                                     **PRIVATE)
    trim.change(quiet_preview, [book_id, trim], spreads, **PRIVATE)
    read_aloud.click(None, js=READ_ALOUD, **PRIVATE)
    back.click(turn(-1), number, number, **PRIVATE).then(quiet_read, [book_id, number], reading,
                                                            **PRIVATE)
    forward.click(turn(1), number, number, **PRIVATE).then(quiet_read, [book_id, number],
                                                              reading, **PRIVATE)
    exporting, deleting = signed_in(settings, export_book), signed_in(settings, delete_book)
    export_button.click(exporting, [book_id, format_choice, draft, trim, bleed], download,
                        show_progress_on=text, **public(exporting, "export_book")).success(
        lambda: gr.update(visible=True), None, download, **PRIVATE)
    delete_button.click(deleting, book_id, deleted, **public(deleting, "delete_book")).success(
        show_deleted, deleted, deleted_note, **PRIVATE).then(
        quiet_refresh, book_id, listing, **PRIVATE).then(quiet_read, [book_id, cover_page],
                                                         reading, **PRIVATE).then(
        quiet_preview, [book_id, trim], spreads, **PRIVATE)
    tab.select(quiet_refresh, book_id, listing, **PRIVATE)
    demo.load(quiet_refresh, book_id, listing, **PRIVATE)
