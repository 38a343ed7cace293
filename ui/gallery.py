"""Gallery tab: the user's books as covers; open one to read it page by page, download it as a
PDF (or one HTML file), delete it (after a confirmation).

Public API: /export_book, /delete_book (events) and /list_books, /get_book (gr.api).
"""
import html
from typing import Optional

import gradio as gr
from PIL import Image

from pipeline.actions import books, likeness
from pipeline.settings import Settings
from ui.auth import Caller, signed_in
from ui.common import (PRIVATE, book_choices, choices, confirmation, escape_md, own_choice,
                       picture, progress_bar, public, scratch_folder)

FORMATS = [("PDF, to print (square 8.5 in pages)", "pdf"), ("HTML, to read in a browser", "html")]
NO_PICTURE = (243, 236, 220)  # the cover of a book without pictures yet


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
                progress=gr.Progress()) -> str:
    """Your book as a printable PDF (square 8.5 x 8.5 in pages) or one HTML file.

    Args:
        book_id: the book's id
        format: "pdf" or "html"
        draft: set pages without a picture yet as text-only pages instead of refusing
    """
    done = books.export(caller.settings, caller.user, book_id or "", scratch_folder(),
                        format=format, draft=bool(draft), on_progress=progress_bar(progress))
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
    """One spread of the reader: 0 is the cover, then the pages."""
    if not book_id or caller is None:
        return gr.update(visible=False), "", None, "", "", 0
    try:
        book = books.get_book(caller.settings, caller.user, book_id)
    except ValueError:
        return gr.update(visible=False), "", None, "", "", 0
    number = min(max(int(number or 0), 0), len(book.pages))
    if number == 0:
        heading = f"<h2 class='tw-title'>{html.escape(book.title)}</h2>"
        image = book.cover_image
        text = books.story_about(book.characters)
        where = "Cover"
    else:
        page = book.page(number)
        heading, image, text = "", page.image, page.text
        where = f"Page {number} of {len(book.pages)}"
    shown = picture(books.picture_path(caller.settings, caller.user, book, image)) \
        if image else None
    body = f"<div class='tw-page-text'>{html.escape(text)}</div>" if text else ""
    return gr.update(visible=True), heading, shown, body, where, number


def turn(step: int):
    def move(number: float) -> int:
        return max(0, int(number or 0) + step)
    return move


def no_download():
    return gr.update(value=None, visible=False)


def ask_delete(caller: Optional[Caller], book_id: Optional[str]):
    """The question before deleting a book: its title, and what goes with it."""
    if caller is None or not book_id:
        return gr.update(visible=False), ""
    try:
        book = books.get_book(caller.settings, caller.user, book_id)
    except ValueError as err:
        return gr.update(visible=False), html.escape(str(err))
    drawn = sum(page.illustrated for page in book.pages)
    return gr.update(visible=True), (
        f"**Delete “{escape_md(book.title)}”?** Its {len(book.pages)} pages and every picture "
        f"drawn for them ({drawn} pages illustrated) go for good; a PDF you downloaded stays "
        "yours.")


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
            text = gr.HTML()
            number = gr.State(0)
            with gr.Row(equal_height=True):
                back = gr.Button("◀ Previous", size="sm")
                where = gr.Markdown("Cover", elem_classes="tw-where")
                forward = gr.Button("Next ▶", size="sm")
            with gr.Row(equal_height=True):
                format_choice = gr.Radio(FORMATS, value="pdf", label="Download as", scale=2)
                draft = gr.Checkbox(label="Pages without a picture as text only", scale=1)
                export_button = gr.Button("Make the download", variant="primary", scale=1)
            download = gr.File(label="Your book", interactive=False, visible=False)
            delete_button = gr.Button("Delete this book…", variant="stop", size="sm")
            asking, question, confirm_button, cancel_button = confirmation("Yes, delete it")
            deleted = gr.JSON(visible=False)
        cover_page = gr.State(0)
        listing_api, reading_api = signed_in(settings, list_books), signed_in(settings, get_book)
        gr.api(listing_api, **public(listing_api, "list_books"))
        gr.api(reading_api, **public(reading_api, "get_book"))

    reading = [reader, heading, image, text, where, number]
    listing = [covers, none_yet, ids, book_id]
    quiet_read = signed_in(settings, read, quiet=True)
    quiet_refresh = signed_in(settings, refresh, quiet=True)
    covers.select(pick_cover, ids, book_id, **PRIVATE).then(
        quiet_read, [book_id, cover_page], reading, **PRIVATE).then(no_download, None, download,
                                                                    **PRIVATE)
    book_id.input(quiet_read, [book_id, cover_page], reading, **PRIVATE).then(
        no_download, None, download, **PRIVATE)
    back.click(turn(-1), number, number, **PRIVATE).then(quiet_read, [book_id, number], reading,
                                                            **PRIVATE)
    forward.click(turn(1), number, number, **PRIVATE).then(quiet_read, [book_id, number],
                                                              reading, **PRIVATE)
    exporting, deleting = signed_in(settings, export_book), signed_in(settings, delete_book)
    export_button.click(exporting, [book_id, format_choice, draft], download,
                        show_progress_on=text, **public(exporting, "export_book")).success(
        lambda: gr.update(visible=True), None, download, **PRIVATE)
    delete_button.click(signed_in(settings, ask_delete, quiet=True), book_id,
                        [asking, question], **PRIVATE)
    cancel_button.click(lambda: gr.update(visible=False), None, asking, **PRIVATE)
    confirm_button.click(lambda: gr.update(visible=False), None, asking, **PRIVATE).then(
        deleting, book_id, deleted, **public(deleting, "delete_book")).success(
        show_deleted, deleted, deleted_note, **PRIVATE).then(
        quiet_refresh, book_id, listing, **PRIVATE).then(quiet_read, [book_id, cover_page],
                                                         reading, **PRIVATE)
    tab.select(quiet_refresh, book_id, listing, **PRIVATE)
    demo.load(quiet_refresh, book_id, listing, **PRIVATE)
