"""The Story tab's page editor: change a book once its pages are made, in place: a page's
words, insert, delete and move pages, the dedication, the closing line and the language.

Public API: /edit_page_text, /insert_page, /delete_page, /move_page, /edit_book.
"""
from types import SimpleNamespace
from typing import Optional

import gradio as gr

from pipeline.actions import books
from pipeline.settings import Settings
from ui.auth import Caller, signed_in
from ui.common import PRIVATE, public


def edit_page_text(caller: Caller, book_id: str, page: int, text: str) -> dict:
    """Change a page's words; its pictures stay. A page whose scene is its words gets them as
    its scene too, and who is on it is found again; "message" says when that changed.

    Args:
        book_id: the book's id
        page: page number, from 1
        text: the page's new words
    """
    return _edited(caller, books.edit_text(caller.settings, caller.user, book_id or "",
                                           int(page or 0), text or ""))


def insert_page(caller: Caller, book_id: str, after: int, text: str) -> dict:
    """Add a page with these words after a page (0: before the first); it has no picture yet.

    Args:
        book_id: the book's id
        after: the page it comes after (0: it becomes the first)
        text: the new page's words
    """
    return _edited(caller, books.insert_page(caller.settings, caller.user, book_id or "",
                                             int(after or 0), text or ""))


def delete_page(caller: Caller, book_id: str, page: int) -> dict:
    """Delete a page, and its pictures.

    Args:
        book_id: the book's id
        page: page number, from 1
    """
    return _edited(caller, books.delete_page(caller.settings, caller.user, book_id or "",
                                             int(page or 0)))


def move_page(caller: Caller, book_id: str, page: int, to: int) -> dict:
    """Move a page, with its pictures, to another place in the book.

    Args:
        book_id: the book's id
        page: page number, from 1
        to: the page number it gets
    """
    return _edited(caller, books.move_page(caller.settings, caller.user, book_id or "",
                                           int(page or 0), int(to or 0)))


def edit_book(caller: Caller, book_id: str, dedication: Optional[str] = None,
              closing: Optional[str] = None, language: Optional[str] = None) -> dict:
    """Change the dedication (its own page after the cover), the closing line (its own page at
    the end) or the book's language for reading aloud.

    Args:
        book_id: the book's id
        dedication: e.g. "For Mia, on her fourth birthday - love, Grandma" ("" removes it,
            None keeps it)
        closing: e.g. "The end. Sweet dreams!" ("" removes it, None keeps it)
        language: a language tag such as en, fr or de-CH ("" for none, None keeps it)
    """
    return _edited(caller, books.edit_words(caller.settings, caller.user, book_id or "",
                                            dedication=dedication, closing=closing,
                                            language=language))


def _edited(caller: Caller, edited: books.Edited) -> dict:
    return {"book": books.book_json(caller.settings, caller.user, edited.book),
            "message": edited.message}


def edited_book(result: dict) -> dict:
    return result["book"]


def tell(result: dict) -> None:
    if result.get("message"):
        gr.Info(result["message"], duration=12)


def book_words(result: dict):
    """The dedication, closing line and language of the book shown, for their boxes."""
    if not result:
        return gr.update(), gr.update(), gr.update()
    return (result.get("dedication", ""), result.get("closing", ""),
            result.get("language", ""))


def pick_row(result: dict, evt: gr.SelectData):
    """A row of the pages table clicked: that page, and its words, in the page editor."""
    pages = (result or {}).get("pages", [])
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if row is None or not 0 <= row < len(pages):
        return gr.update(), gr.update()
    return row + 1, pages[row]["text"]


def followed(kind: str):
    """After an edit, the page editor shows the page edited where it now is: the new page after
    an insert, the moved page at its new place, the one that took a deleted page's place."""
    def follow(result: dict, number: float, to: float):
        pages = result["book"]["pages"]
        number = {"insert_page": int(number or 0) + 1, "move_page": int(to or 0)}.get(
            kind, int(number or 0))
        number = min(max(number, 1), len(pages))
        return number, pages[number - 1]["text"]
    return follow


def page_words(result: dict, number: float):
    """The words of the page whose number was typed into the page editor."""
    pages = (result or {}).get("pages", [])
    number = int(number or 0)
    return pages[number - 1]["text"] if 1 <= number <= len(pages) else gr.update()


def page_editor() -> SimpleNamespace:
    """The section that changes the book once its pages are made (inside the Story tab)."""
    with gr.Accordion("Change the book: a page's words, the order of pages, the dedication",
                      open=False) as section:
        gr.Markdown("Click a row of the pages table to bring its page here. Pictures stay with "
                    "their pages; a new page is drawn by **Illustrate all pages**.")
        with gr.Row():
            page = gr.Number(1, precision=0, minimum=0, label="Page", scale=1)
            to = gr.Number(1, precision=0, minimum=1, label="Move it to page", scale=1)
        text = gr.Textbox(label="The page's words", lines=3)
        with gr.Row():
            save = gr.Button("Save the words", size="sm")
            insert = gr.Button("Insert them as a new page after this one", size="sm")
            move = gr.Button("Move the page", size="sm")
            delete = gr.Button("Delete the page", size="sm", variant="stop")
        with gr.Row():
            dedication = gr.Textbox(label="Dedication, after the cover", lines=2,
                                    placeholder="For Mia, on her fourth birthday - love, "
                                                "Grandma")
            closing = gr.Textbox(label="Closing line, at the end", lines=2,
                                 placeholder="The end. Sweet dreams!")
            language = gr.Textbox(label="Language, for reading aloud", max_lines=1,
                                  placeholder="en, fr, de...")
        save_words = gr.Button("Save the dedication, closing line and language", size="sm")
        result = gr.JSON(visible=False)
    return SimpleNamespace(section=section, page=page, to=to, text=text, save=save,
                           insert=insert, move=move, delete=delete, dedication=dedication,
                           closing=closing, language=language, save_words=save_words,
                           result=result)


def wire_page_editor(settings: Settings, editor: SimpleNamespace, book_id, book, pages,
                     shown: list, show, page) -> None:
    """The page editor's events: each change saves, shows the book again, tells the parent."""
    for button, handler, inputs, name in (
            (editor.save, edit_page_text, [editor.page, editor.text], "edit_page_text"),
            (editor.insert, insert_page, [editor.page, editor.text], "insert_page"),
            (editor.delete, delete_page, [editor.page], "delete_page"),
            (editor.move, move_page, [editor.page, editor.to], "move_page"),
            (editor.save_words, edit_book, [editor.dedication, editor.closing, editor.language],
             "edit_book")):
        door = signed_in(settings, handler)
        button.click(door, [book_id, *inputs], editor.result, show_progress_on=editor.section,
                     **public(door, name)).success(
            edited_book, editor.result, book, **PRIVATE).then(
            show, [book, page], shown, **PRIVATE).then(tell, editor.result, None, **PRIVATE).then(
            followed(name), [editor.result, editor.page, editor.to], [editor.page, editor.text],
            **PRIVATE)
    book.change(book_words, book, [editor.dedication, editor.closing, editor.language],
                **PRIVATE)
    pages.select(pick_row, book, [editor.page, editor.text], **PRIVATE)
    editor.page.input(page_words, [book, editor.page], editor.text, **PRIVATE)
