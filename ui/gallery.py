"""Gallery tab: the user's books as covers; open one to read it page by page, download it as a
PDF (or one HTML file), delete it.

Public API: /export_book, /delete_book (events) and /list_books, /get_book (gr.api).
"""
import html
from typing import Optional

import gradio as gr
from PIL import Image

from pipeline.book import BookStore
from pipeline.export import export_book, file_name, story_about
from pipeline.settings import Settings
from ui.auth import identify, identify_quietly
from ui.common import (PRIVATE, choices, own_choice, picture, progress_bar, public, scratch_file,
                       user_errors)
from ui.story import book_choices

FORMATS = [("PDF, to print (square 8.5 in pages)", "pdf"), ("HTML, to read in a browser", "html")]
NO_PICTURE = (243, 236, 220)  # the cover of a book without pictures yet


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Gallery tab and its events (inside the app's gr.Tabs)."""

    @user_errors
    def list_books(profile: Optional[gr.OAuthProfile] = None,
                   token: Optional[gr.OAuthToken] = None) -> list[dict]:
        """Your books, newest first: id, title, pages, pages with a picture, when made."""
        who = identify(settings, profile, token)
        return [{"id": item.id, "title": item.title, "pages": item.pages,
                 "illustrated": item.illustrated, "created": item.created,
                 "updated": item.updated} for item in BookStore(settings, who.user).gallery()]

    @user_errors
    def get_book(book_id: str, profile: Optional[gr.OAuthProfile] = None,
                 token: Optional[gr.OAuthToken] = None) -> dict:
        """One of your books: title, style, seed, and each page's text, scene prompt,
        characters and pictures (with the seed and prompt of each).

        Args:
            book_id: the book's id
        """
        who = identify(settings, profile, token)
        return BookStore(settings, who.user).get(book_id or "").to_json()

    @user_errors
    def export_book_api(book_id: str, format: str = "pdf", draft: bool = False,
                        profile: Optional[gr.OAuthProfile] = None,
                        token: Optional[gr.OAuthToken] = None, progress=gr.Progress()) -> str:
        """Your book as a printable PDF (square 8.5 x 8.5 in pages) or one HTML file.

        Args:
            book_id: the book's id
            format: "pdf" or "html"
            draft: set pages without a picture yet as text-only pages instead of refusing
        """
        who = identify(settings, profile, token)
        store = BookStore(settings, who.user)
        book = store.get(book_id or "")
        done = export_book(store, book, scratch_file(file_name(book, f".{format}")),
                           draft=bool(draft), on_progress=progress_bar(progress))
        if done.dropped:
            gr.Warning("Left out of the PDF (the book font can't print them): "
                       + " ".join(done.dropped))
        return str(done.path)

    @user_errors
    def delete_book_api(book_id: str, profile: Optional[gr.OAuthProfile] = None,
                        token: Optional[gr.OAuthToken] = None) -> dict:
        """Delete one of your books with all its pictures.

        Args:
            book_id: the book's id
        """
        who = identify(settings, profile, token)
        store = BookStore(settings, who.user)
        book = store.get(book_id or "")
        store.delete(book.id)
        return {"deleted": book.id, "title": book.title}

    def refresh(current: Optional[str], profile: Optional[gr.OAuthProfile] = None,
                token: Optional[gr.OAuthToken] = None):
        who = identify_quietly(settings, profile, token)
        items = BookStore(settings, who.user).gallery() if who else []
        covers = [(picture(item.thumbnail) or Image.new("RGB", (256, 256), NO_PICTURE),
                   item.title if item.illustrated == item.pages
                   else f"{item.title} ({item.illustrated}/{item.pages} drawn)")
                  for item in items]
        listed = book_choices(settings, who.user) if who else []
        dropdown = choices(listed, current, first=False)
        dropdown["visible"] = bool(listed)
        return (gr.update(value=covers, visible=bool(covers)), gr.update(visible=not covers),
                [item.id for item in items], dropdown)

    def pick_cover(ids: list, evt: gr.SelectData):
        return ids[evt.index] if evt.index is not None and evt.index < len(ids) else gr.update()

    def read(book_id: Optional[str], number: float,
             profile: Optional[gr.OAuthProfile] = None, token: Optional[gr.OAuthToken] = None):
        """One spread of the reader: 0 is the cover, then the pages."""
        who = identify_quietly(settings, profile, token)
        if not book_id or who is None:
            return gr.update(visible=False), "", None, "", "", 0
        store = BookStore(settings, who.user)
        try:
            book = store.get(book_id)
        except ValueError:
            return gr.update(visible=False), "", None, "", "", 0
        number = min(max(int(number or 0), 0), len(book.pages))
        if number == 0:
            heading = f"<h2 class='tw-title'>{html.escape(book.title)}</h2>"
            image = book.cover_image
            text = story_about(book.characters)
            where = "Cover"
        else:
            page = book.page(number)
            heading, image, text = "", page.image, page.text
            where = f"Page {number} of {len(book.pages)}"
        shown = picture(store.image_path(book, image)) if image else None
        body = f"<div class='tw-page-text'>{html.escape(text)}</div>" if text else ""
        return gr.update(visible=True), heading, shown, body, where, number

    def turn(step: int):
        def move(number: float) -> int:
            return max(0, int(number or 0) + step)
        return move

    def no_download():
        return gr.update(value=None, visible=False)

    def show_deleted(result: dict) -> str:
        return f"Deleted “{html.escape(result['title'])}”." if result else ""

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
            delete_button = gr.Button("Delete this book", variant="stop", size="sm")
            deleted = gr.JSON(visible=False)
        cover_page = gr.State(0)
        gr.api(list_books, **public(list_books, "list_books"))
        gr.api(get_book, **public(get_book, "get_book"))

    reading = [reader, heading, image, text, where, number]
    listing = [covers, none_yet, ids, book_id]
    covers.select(pick_cover, ids, book_id, **PRIVATE).then(
        read, [book_id, cover_page], reading, **PRIVATE).then(no_download, None, download,
                                                              **PRIVATE)
    book_id.input(read, [book_id, cover_page], reading, **PRIVATE).then(
        no_download, None, download, **PRIVATE)
    back.click(turn(-1), number, number, **PRIVATE).then(read, [book_id, number], reading,
                                                            **PRIVATE)
    forward.click(turn(1), number, number, **PRIVATE).then(read, [book_id, number], reading,
                                                              **PRIVATE)
    export_button.click(export_book_api, [book_id, format_choice, draft], download,
                        show_progress_on=text, **public(export_book_api, "export_book")).success(
        lambda: gr.update(visible=True), None, download, **PRIVATE)
    delete_button.click(delete_book_api, book_id, deleted,
                        **public(delete_book_api, "delete_book")).success(
        show_deleted, deleted, deleted_note, **PRIVATE).then(
        refresh, book_id, listing, **PRIVATE).then(read, [book_id, cover_page], reading,
                                                   **PRIVATE)
    tab.select(refresh, book_id, listing, **PRIVATE)
    demo.load(refresh, book_id, listing, **PRIVATE)
