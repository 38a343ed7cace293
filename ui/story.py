"""Story tab: a title and a story (or a draft from a premise), a style, the pages with their
editable scenes, illustrating every page, redrawing one, choosing among its pictures.

Public API: /draft_story, /new_book, /illustrate_book, /illustrate_page, /choose_candidate;
and changing the book once made (ui/page_editor.py).
"""
import logging
from typing import Optional

import gradio as gr

from pipeline.actions import books, characters, drawing, likeness
from pipeline.actions.system import ModelUnavailableError, drafting_problem, machine
from pipeline.progress import counted
from pipeline.settings import Settings
from ui.auth import Caller, signed_in
from ui.common import (GPU, PRIVATE, STATUS_HEIGHT, book_choices, choices, escape_md, own_choice,
                       picture, progress_bar, public)
from ui.page_editor import page_editor, wire_page_editor

log = logging.getLogger(__name__)
NO_DRAFTS = ("Drafting stories isn't available on this server: write the story yourself in the "
             "Story box, a paragraph per page, and everything else works as usual.")
log = logging.getLogger(__name__)
PAGE_HEADERS = ["Page", "Text", "Scene (click to edit)", "Characters", "Likeness"]
INTRO = """\
Write your story with your characters' names. **A blank line starts a new page.** A page may end
with a line `Scene: ...` describing its picture; without one, the page text is the scene. Then
press **Make the pages**, check the scenes (you can edit them), and illustrate."""
EXAMPLE = """Mia and Rex ran down to the lighthouse.
Scene: Mia and Rex on a windy beach at sunset, a red lighthouse behind them

Rex found a shell and carried it home."""


def draft_story(caller: Caller, premise: str, characters: Optional[list[str]] = None,
                pages: int = 6, seed: int = 0, progress=gr.Progress()) -> dict:
    """Draft a story with the story language model, in the story format, ready to edit.

    Args:
        premise: what the story is about, in a sentence or two
        characters: names of your characters to put in it
        pages: number of pages
        seed: sampling seed (the same seed gives the same draft)
    """
    try:
        drafted = books.draft(caller.settings, caller.user, premise or "", characters or [],
                              int(pages or 0), seed=int(seed or 0),
                              on_progress=progress_bar(progress))
    except ModelUnavailableError as err:  # why goes to the server's log, not to the caller
        log.error("story drafting unavailable: %s", err)
        raise ValueError(NO_DRAFTS) from None
    return drafted.to_json()


def draft_availability(caller: Optional[Caller]):
    """The Draft button, disabled with one sentence where the story model can't load here."""
    problem = drafting_problem(caller.settings) if caller else ""
    return gr.update(interactive=not problem), gr.update(visible=bool(problem))


def new_book(caller: Caller, title: str, story: str, style: str = books.DEFAULT_STYLE,
             seed: int = -1) -> dict:
    """Split a story into pages with your characters and save it as a new book (no pictures
    yet). Each page keeps its scene in your words; the prompt with the characters' trigger
    words is made when the page is drawn (each page's "prompt" shows it). "waiting" says
    which characters aren't trained yet (or were deleted), and so which pages can't be drawn.

    Args:
        title: the book's title
        story: the story: pages apart by blank lines; optional "Scene: ..." lines
        style: art style: watercolor, pastel, cartoon, pencil, 3d or papercut
        seed: the book's seed (-1: random; either way it is recorded in the book)
    """
    book = books.new_book(caller.settings, caller.user, title or "", story or "",
                          style or books.DEFAULT_STYLE,
                          None if seed is None or seed < 0 else int(seed))
    made = books.book_json(caller.settings, caller.user, book)
    for waiting in made["waiting"]:  # "waiting" in the result says it to API callers
        gr.Warning(waiting + ".", duration=20)
    return made


def illustrate_book(caller: Caller, book_id: str, candidates: int = 1, width: int = 0,
                    height: int = 0, steps: int = 0, face_pass: Optional[bool] = None,
                    redraw_below: int = -1, redraw_tries: int = -1, face_strength: float = 0,
                    face_margin: float = -1, progress=gr.Progress()) -> dict:
    """Draw every page of a book that has no picture yet, saving each page as it is drawn
    (after an interruption, calling this again goes on where it stopped). Each picture is
    scored against your characters' photos; the best is kept, and weak pages are drawn again.

    Args:
        book_id: the book's id (from /new_book or /list_books)
        candidates: pictures per page to choose from (1 to 4)
        width: picture width in pixels (0: the style's SDXL size on a GPU, smaller on a CPU)
        height: picture height in pixels (0: the style's SDXL size on a GPU, smaller on a CPU)
        steps: denoising steps (0: the style's on a GPU, fewer on a CPU)
        face_pass: redraw each character's head with only its own adapter (null: the app's
            setting)
        redraw_below: draw a page again when its weakest likeness is under this, 0-100 (-1:
            the app's setting)
        redraw_tries: at most this many more pictures for such a page (-1: the app's setting)
        face_strength: how much of each head the second pass redraws, above 0 to 1 (0: the
            app's setting)
        face_margin: room around a face in the redrawn square, in face sides (-1: the app's
            setting)
    """
    book = drawing.illustrate(caller.settings, caller.user, book_id or "",
                            _options(candidates, width, height, steps, face_pass, redraw_below,
                                     redraw_tries, face_strength, face_margin),
                            token=caller.token,
                            on_progress=progress_bar(progress, outlives_the_tab=True))
    return books.book_json(caller.settings, caller.user, book)


def _options(candidates, width, height, steps, face_pass=None, redraw_below=-1,
             redraw_tries=-1, face_strength=0, face_margin=-1):
    """The form's picture options; -1 (0 for the strength, None) keeps the app's settings."""
    def setting(value, unset):
        return None if value is None or value <= unset else value

    return drawing.drawing_options(
        candidates, width, height, steps, face_pass=face_pass,
        redraw_below=setting(redraw_below, -1), redraw_tries=setting(redraw_tries, -1),
        face_strength=setting(face_strength, 0), face_margin=setting(face_margin, -1))


def estimate_drawing(caller: Caller, book_id: str, candidates: int = 1, width: int = 0,
                     height: int = 0, steps: int = 0, face_pass: Optional[bool] = None,
                     redraw_below: int = -1, redraw_tries: int = -1) -> dict:
    """The GPU time drawing a book's missing pages will cost, with what weak-page redraws
    may add, before drawing.

    Args:
        book_id: the book's id
        candidates: pictures per page (1 to 4)
        width: picture width in pixels (0: the style's)
        height: picture height in pixels (0: the style's)
        steps: denoising steps (0: the style's)
        face_pass: the second pass on or off (null: the app's setting)
        redraw_below: the redraw threshold (-1: the app's setting)
        redraw_tries: the most redraws a page (-1: the app's setting)
    """
    return drawing.estimate_drawing(caller.settings, caller.user, book_id or "", _options(
        candidates, width, height, steps, face_pass, redraw_below, redraw_tries)).to_json()


def set_page_order(caller: Caller, book_id: str, page: int, order: str = "") -> dict:
    """Where a page's characters stand, left to right, the next time it is drawn.

    Args:
        book_id: the book's id
        page: page number, from 1
        order: the page's characters from left to right, comma-separated, e.g. "Grandma, Mia"
            ("": the order the story names them)
    """
    book = drawing.set_order(caller.settings, caller.user, book_id or "", int(page or 0),
                           (order or "").split(","))
    return books.book_json(caller.settings, caller.user, book)


def rescore_book(caller: Caller, book_id: str, progress=gr.Progress()) -> dict:
    """Score every picture of a book again against your characters' photos; each page shows
    its best picture, unless you chose one.

    Args:
        book_id: the book's id
    """
    book = likeness.rescore(caller.settings, caller.user, book_id or "",
                            on_progress=progress_bar(progress))
    return books.book_json(caller.settings, caller.user, book)


def illustrate_page(caller: Caller, book_id: str, page: int, scene: str = "", seed: int = -1,
                    candidates: int = 1, width: int = 0, height: int = 0, steps: int = 0,
                    face_pass: Optional[bool] = None, progress=gr.Progress()) -> dict:
    """Draw new pictures for one page, with an edited scene or a chosen seed; the first
    new picture becomes the page's picture and the others stay to choose from.

    Args:
        book_id: the book's id
        page: page number, from 1
        scene: a new scene in your words ("" keeps the page's); names are the characters
        seed: seed of the first new picture (-1: a fresh one)
        candidates: how many new pictures (1 to 4)
        width: picture width in pixels (0: the style's SDXL size on a GPU, smaller on a CPU)
        height: picture height in pixels (0: the style's SDXL size on a GPU, smaller on a CPU)
        steps: denoising steps (0: the style's on a GPU, fewer on a CPU)
        face_pass: redraw each character's head with only its own adapter (null: the app's
            setting)
    """
    progress(None, desc=f"drawing page {int(page or 0)}")
    book = drawing.redraw_page(caller.settings, caller.user, book_id or "", int(page or 0),
                             _options(candidates, width, height, steps, face_pass),
                             scene=(scene or "").strip() or None,
                             seed=None if seed is None or seed < 0 else int(seed),
                             token=caller.token, on_progress=progress_bar(progress))
    return books.book_json(caller.settings, caller.user, book)


def choose_candidate(caller: Caller, book_id: str, page: int, candidate: int) -> dict:
    """Make one of a page's pictures the one the book shows.

    Args:
        book_id: the book's id
        page: page number, from 1
        candidate: picture number, from 1, in the order drawn
    """
    book = drawing.choose_picture(caller.settings, caller.user, book_id or "", int(page or 0),
                                int(candidate or 0))
    return books.book_json(caller.settings, caller.user, book)


def save_scenes(caller: Caller, book_id: str, rows: list) -> dict:
    """Save the scenes edited in the pages table."""
    book = books.get_book(caller.settings, caller.user, book_id or "")
    for number, row in enumerate(rows[:len(book.pages)], start=1):
        scene = str(row[2] or "").strip()
        if scene and scene != book.page(number).scene:
            book = books.edit_scene(caller.settings, caller.user, book.id, number, scene)
    return book.to_json()


def show_in_force(caller: Optional[Caller], style: str, width: float, height: float,
                  steps: float) -> str:
    """The size and steps pages are drawn with here, and why when 0 means less than the
    style's (no GPU)."""
    if caller is None:
        return ""
    style = style or books.DEFAULT_STYLE
    try:
        used = drawing.drawing_in_force(caller.settings, style,
                                      drawing.drawing_options(1, width, height, steps))
        chosen = books.styles()[style]
    except (ValueError, KeyError) as err:
        return f"**Can't draw so:** {escape_md(str(err))}"
    text = f"Pages are drawn at **{used.width}x{used.height}** in **{used.steps} steps**"
    automatic = not (width and height and steps)
    if automatic and (used.width, used.height, used.steps) != \
            (chosen.width, chosen.height, chosen.steps) and not machine(caller.settings).has_gpu:
        text += (f": without a GPU here, 0 means smaller and fewer than the style's "
                 f"{chosen.width}x{chosen.height} in {chosen.steps} steps, so that a page takes "
                 "seconds rather than minutes")
    return text + "."


def open_book(caller: Caller, book_id: str) -> dict:
    return books.get_book(caller.settings, caller.user, book_id).to_json() if book_id else {}


def stored_book(caller: Optional[Caller], result: dict) -> Optional[books.Book]:
    """The book a result names, read again from the asking user's own store."""
    if not result or caller is None:
        return None
    try:
        return books.get_book(caller.settings, caller.user, result["id"])
    except ValueError:  # deleted meanwhile, in another tab
        return None


def show_book(caller: Optional[Caller], result: dict, page: float):
    book = stored_book(caller, result)
    if book is None:
        return [gr.update()] * 6
    rows = [[n, p.text, p.scene, ", ".join(p.characters) or "nobody", _page_likeness(p)]
            for n, p in enumerate(book.pages, start=1)]
    drawn = [n for n, p in enumerate(book.pages, start=1) if p.illustrated]
    pictures = [(picture(books.picture_path(caller.settings, caller.user, book,
                                            book.page(n).image)), f"Page {n}") for n in drawn]
    done = len(drawn)
    if not done:
        note = (f"**{escape_md(book.title)}**: {counted(len(book.pages), 'page')}, ready to "
                "illustrate.")
    elif done < len(book.pages):
        note = (f"**{escape_md(book.title)}**: {done} of {len(book.pages)} pages "
                f"{'has' if done == 1 else 'have'} a picture. Press **Illustrate all "
                "pages** to draw the rest.")
    else:
        note = (f"**{escape_md(book.title)}**: every page has a picture. Read it or download "
                "the PDF in the **Gallery** tab, or redraw a page below.")
    summary = likeness.summary_line(likeness.book_summary(book))
    if summary:
        note += f"\n\n**Likeness across the book:** {escape_md(summary)}"
    number = min(max(int(page or 1), 1), len(book.pages))
    listed = book_choices(books.list_books(caller.settings, caller.user))
    return (gr.update(choices=listed, value=book.id), gr.update(value=rows, visible=True),
            gr.update(value=pictures, visible=bool(pictures)), drawn, note,
            page_candidates(caller, book, number))


def _page_likeness(page) -> str:
    """The Likeness column: each character's likeness on the page's picture, or why it waits."""
    if page.waiting:
        return f"waiting: {page.waiting}"
    lines = likeness.page_lines(page.chosen.score) if page.chosen else []
    if len(page.layout) > 1:
        lines.append("left to right: " + ", ".join(region.name for region in page.layout))
    return "\n".join(lines)


def page_candidates(caller: Caller, book: books.Book, number: int):
    page = book.page(number)
    shown = [(picture(books.picture_path(caller.settings, caller.user, book, c.file)),
              f"Picture {i}" + (" (in the book)" if c.file == page.image else "")
              + "".join(f"\n{line}" for line in likeness.page_lines(c.score)))
             for i, c in enumerate(page.candidates, start=1)]
    return gr.update(value=shown, visible=bool(shown),
                     label=f"Page {number}'s pictures: click one to put it in the book")


def pick_page(caller: Optional[Caller], drawn: list, result: dict, evt: gr.SelectData):
    book = stored_book(caller, result)
    if book is None or evt.index is None or evt.index >= len(drawn):
        return gr.update(), gr.update(), gr.update(), gr.update()
    number = drawn[evt.index]
    return (number, book.page(number).scene, page_candidates(caller, book, number),
            gr.update(open=True))


def candidate_number(evt: gr.SelectData) -> int:
    return evt.index + 1


def refresh(caller: Optional[Caller], current: Optional[str]):
    if caller is None:
        return gr.update(choices=[]), gr.update(choices=[])
    names = [row.name for row in characters.list_characters(caller.settings, caller.user)]
    return (choices(book_choices(books.list_books(caller.settings, caller.user)), current),
            gr.update(choices=names))


def show_estimate(caller: Optional[Caller], book_id: Optional[str], candidates: int,
                  width: int, height: int, steps: int, face_pass: bool, redraw_below: int,
                  redraw_tries: int) -> str:
    if caller is None or not book_id:
        return ""
    try:
        needed = estimate_drawing(caller, book_id, candidates, width, height, steps, face_pass,
                                  redraw_below, redraw_tries)
    except (ValueError, RuntimeError):
        return ""
    return f"**Estimated:** {escape_md(needed['text'])}"


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Story tab and its events (inside the app's gr.Tabs)."""
    styles = books.styles()
    defaults = drawing.drawing_defaults(settings)
    with gr.Tab("3 · Story", id="story") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            title = gr.Textbox(label="Title", placeholder="Mia's Day at the Sea", scale=3)
            style = gr.Dropdown([(s.label, name) for name, s in styles.items()],
                                value=books.DEFAULT_STYLE, label="Art style", scale=1,
                                allow_custom_value=True)  # the engine names the styles
        story = gr.Textbox(label="Story", lines=9, placeholder=EXAMPLE)
        with gr.Accordion("Draft it for me", open=False):
            no_drafts = gr.Markdown(NO_DRAFTS, visible=False)
            premise = gr.Textbox(label="What is the story about?",
                                 placeholder="Mia and Rex find a message in a bottle")
            with gr.Row():
                cast = own_choice("Characters in it", "Mia", multiselect=True)
                draft_pages = gr.Slider(1, 12, value=5, step=1, label="Pages")
                draft_seed = gr.Number(0, precision=0, label="Seed", visible=False)
            draft_button = gr.Button("Draft the story", size="sm")
            drafted = gr.JSON(visible=False)
        with gr.Accordion("Picture options", open=False):
            with gr.Row():
                candidates = gr.Slider(1, drawing.MAX_CANDIDATES, value=1, step=1,
                                       label="Pictures per page to choose from")
                seed = gr.Number(-1, precision=0, minimum=-1, label="Book seed (-1: random)")
            with gr.Row():
                width = gr.Number(0, precision=0, minimum=0, label="Width (0: automatic)")
                height = gr.Number(0, precision=0, minimum=0, label="Height (0: automatic)")
                steps = gr.Number(0, precision=0, minimum=0, label="Steps (0: automatic)")
            in_force = gr.Markdown()
            with gr.Row():
                face_pass = gr.Checkbox(defaults["face_pass"], label="Redraw each face with "
                                        "only its own character (keeps a family apart)")
                redraw_below = gr.Slider(0, 100, value=defaults["redraw_below"], step=1,
                                         label="Draw a page again when a likeness is below")
                redraw_tries = gr.Slider(0, 8, value=defaults["redraw_tries"], step=1,
                                         label="At most this many more pictures for such a "
                                               "page (each costs GPU time)")
        make_button = gr.Button("Make the pages", variant="primary")
        with gr.Row(equal_height=True):
            book_id = own_choice("Book", "3f9c1a2b7d4e6f80", scale=3,
                                 info="The book you are working on; pick one to continue it")
            illustrate_button = gr.Button("Illustrate all pages", variant="primary", scale=1)
        estimate_note = gr.Markdown()
        book = gr.JSON(visible=False)
        note = gr.Markdown(min_height=STATUS_HEIGHT)
        pages = gr.Dataframe(headers=PAGE_HEADERS, type="array", interactive=True,
                             static_columns=[0, 1, 3, 4], wrap=True, row_count=0,
                             visible=False, label="Pages",
                             column_widths=["6%", "30%", "30%", "12%", "22%"],
                             elem_classes=["tw-pages", "tw-table"])
        drawn = gr.State([])
        page_pictures = gr.Gallery(label="Pictures: click one to redraw that page or choose "
                                         "another picture", columns=4, height=330,
                                   allow_preview=False, visible=False, object_fit="contain",
                                   fit_columns=False, buttons=[])
        with gr.Accordion("Redraw a page, or choose another picture", open=False) as redraw:
            with gr.Row():
                page = gr.Number(1, precision=0, minimum=1, label="Page")
                redraw_seed = gr.Number(-1, precision=0, label="Seed (-1: a new one)")
            scene = gr.Textbox(label="New scene (empty: keep the page's)", lines=2)
            with gr.Row(equal_height=True):
                order = gr.Textbox(label="Characters from left to right (empty: as the story "
                                         "names them)", placeholder="Grandma, Mia", scale=3)
                order_button = gr.Button("Set the order", size="sm", scale=1)
            redraw_button = gr.Button("Redraw this page", size="sm")
            rescore_button = gr.Button("Score every picture again", size="sm")
            page_choices = gr.Gallery(columns=4, height=330, allow_preview=False,
                                      visible=False, object_fit="contain", fit_columns=False,
                                      buttons=[])
        candidate = gr.Number(1, precision=0, visible=False, label="Picture")
        estimating = signed_in(settings, estimate_drawing)
        gr.api(estimating, **public(estimating, "estimate_drawing"))
        editor = page_editor()

    def quiet(fn):
        return signed_in(settings, fn, quiet=True)

    def door(fn):
        return signed_in(settings, fn)

    options = [candidates, width, height, steps, face_pass, redraw_below, redraw_tries]
    shown = [book_id, pages, page_pictures, drawn, note, page_choices]
    show = quiet(show_book)
    drafting, making = door(draft_story), door(new_book)
    illustrating, redrawing, choosing = door(illustrate_book), door(illustrate_page), \
        door(choose_candidate)
    draft_button.click(drafting, [premise, cast, draft_pages, draft_seed], drafted,
                       show_progress_on=story, **public(drafting, "draft_story"), **GPU).success(
        lambda result: result["story"], drafted, story, **PRIVATE)
    make_button.click(making, [title, story, style, seed], book, show_progress_on=note,
                      **public(making, "new_book")).success(show, [book, page], shown, **PRIVATE)
    illustrate_button.click(illustrating, [book_id, *options], book, show_progress_on=note,
                            **public(illustrating, "illustrate_book"), **GPU).success(
        show, [book, page], shown, **PRIVATE)
    redraw_button.click(redrawing, [book_id, page, scene, redraw_seed, *options[:5]],
                        book, show_progress_on=[note, page_choices],
                        **public(redrawing, "illustrate_page"), **GPU).success(
        show, [book, page], shown, **PRIVATE)
    ordering, rescoring = door(set_page_order), door(rescore_book)
    order_button.click(ordering, [book_id, page, order], book,
                       **public(ordering, "set_page_order")).success(
        show, [book, page], shown, **PRIVATE)
    rescore_button.click(rescoring, book_id, book, show_progress_on=note,
                         **public(rescoring, "rescore_book")).success(
        show, [book, page], shown, **PRIVATE)
    quiet_estimate = quiet(show_estimate)
    for control in (book_id, *options):
        control.change(quiet_estimate, [book_id, *options], estimate_note, **PRIVATE)
    book.change(quiet_estimate, [book_id, *options], estimate_note, **PRIVATE)
    page_choices.select(candidate_number, None, candidate, **PRIVATE).then(
        choosing, [book_id, page, candidate], book, show_progress_on=page_choices,
        **public(choosing, "choose_candidate")).success(show, [book, page], shown, **PRIVATE)
    pages.input(door(save_scenes), [book_id, pages], book, **PRIVATE).success(
        show, [book, page], shown, **PRIVATE)
    wire_page_editor(settings, editor, book_id, book, pages, shown, show, page)
    page_pictures.select(quiet(pick_page), [drawn, book], [page, scene, page_choices, redraw],
                         **PRIVATE)
    opening = door(open_book)
    book_id.input(opening, book_id, book, **PRIVATE).success(show, [book, page], shown,
                                                             **PRIVATE)
    demo.load(quiet(draft_availability), None, [draft_button, no_drafts], **PRIVATE)
    sizing = [style, width, height, steps]
    for control in sizing:
        control.change(quiet(show_in_force), sizing, in_force, **PRIVATE)
    demo.load(quiet(show_in_force), sizing, in_force, **PRIVATE)
    for opened in (tab.select, demo.load):  # the book the dropdown shows, with its pages
        opened(quiet(refresh), book_id, [book_id, cast], **PRIVATE).then(
            opening, book_id, book, **PRIVATE).success(show, [book, page], shown, **PRIVATE)
