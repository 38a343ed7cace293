"""Story tab: a title and a story (or a draft from a premise), a style, the pages with their
editable scene prompts, illustrating every page, redrawing one, choosing among its pictures.

Public API: /draft_story, /new_book, /illustrate_book, /illustrate_page, /choose_candidate.
"""
from typing import Optional

import gradio as gr

from pipeline.book import Book, BookStore
from pipeline.characters import CharacterStore
from pipeline.draft import draft_story
from pipeline.illustrate import (MAX_CANDIDATES, IllustrateConfig, choose_candidate,
                                 illustrate_book, new_book, regenerate_page, set_page_scene)
from pipeline.models import ModelUnavailableError
from pipeline.progress import counted
from pipeline.settings import Settings
from pipeline.store import StoreError
from pipeline.styles import DEFAULT_STYLE, load_styles
from ui.auth import identify, identify_quietly
from ui.common import (GPU, PRIVATE, STATUS_HEIGHT, choices, escape_md, own_choice, picture,
                       progress_bar, public, user_errors)

NO_DRAFTS = ("Drafting stories isn't available on this server: write the story yourself in the "
             "Story box, a paragraph per page, and everything else works as usual.")
PAGE_HEADERS = ["Page", "Text", "Scene prompt (click to edit)", "Characters"]
INTRO = """\
Write your story with your characters' names. **A blank line starts a new page.** A page may end
with a line `Scene: ...` describing its picture; without one, the page text is the scene. Then
press **Make the pages**, check the scene prompts (you can edit them), and illustrate."""
EXAMPLE = """Mia and Rex ran down to the lighthouse.
Scene: Mia and Rex on a windy beach at sunset, a red lighthouse behind them

Rex found a shell and carried it home."""


def illustrate_config(candidates: float, width: float, height: float,
                      steps: float) -> IllustrateConfig:
    """Drawing options from the form: 0 (or empty) means the style's own size and steps."""
    return IllustrateConfig(candidates=int(candidates or 1), width=int(width or 0) or None,
                            height=int(height or 0) or None, steps=int(steps or 0) or None)


def book_choices(settings: Settings, user: str) -> list[tuple[str, str]]:
    """(label, id) of the user's books, newest first, for a dropdown."""
    return [(f"{book.title} ({counted(len(book.pages), 'page')}, {book.created[:10]})", book.id)
            for book in BookStore(settings, user).list()]


def build(settings: Settings, demo: gr.Blocks) -> None:
    """The Story tab and its events (inside the app's gr.Tabs)."""
    styles = load_styles()

    @user_errors
    def draft_story_api(premise: str, characters: Optional[list[str]] = None, pages: int = 6,
                        seed: int = 0, profile: Optional[gr.OAuthProfile] = None,
                        token: Optional[gr.OAuthToken] = None, progress=gr.Progress()) -> dict:
        """Draft a story with the story language model, in the story format, ready to edit.

        Args:
            premise: what the story is about, in a sentence or two
            characters: names of your characters to put in it
            pages: number of pages
            seed: sampling seed (the same seed gives the same draft)
        """
        who = identify(settings, profile, token)
        store = CharacterStore(settings, who.user)
        cast = [store.get(name) for name in characters or []]
        try:
            draft = draft_story(settings, premise or "", cast, int(pages or 0),
                                seed=int(seed or 0), on_progress=progress_bar(progress))
        except ModelUnavailableError as err:
            raise ModelUnavailableError(f"{NO_DRAFTS} (For whoever runs this app: {err})") from err
        return {**draft.to_json(), "story": draft.story_text()}

    @user_errors
    def new_book_api(title: str, story: str, style: str = DEFAULT_STYLE, seed: int = -1,
                     profile: Optional[gr.OAuthProfile] = None,
                     token: Optional[gr.OAuthToken] = None) -> dict:
        """Split a story into pages with your characters and save it as a new book (no pictures
        yet). Each page gets a scene prompt in which names become the characters' trigger words.

        Args:
            title: the book's title
            story: the story: pages apart by blank lines; optional "Scene: ..." lines
            style: art style: watercolor, pastel, cartoon, pencil, 3d or papercut
            seed: the book's seed (-1: random; either way it is recorded in the book)
        """
        who = identify(settings, profile, token)
        book = new_book(settings, who.user, title or "", story or "", style or DEFAULT_STYLE,
                        None if seed is None or seed < 0 else int(seed))
        return book.to_json()

    @user_errors
    def illustrate_book_api(book_id: str, candidates: int = 1, width: int = 0, height: int = 0,
                            steps: int = 0, profile: Optional[gr.OAuthProfile] = None,
                            token: Optional[gr.OAuthToken] = None,
                            progress=gr.Progress()) -> dict:
        """Draw every page of a book that has no picture yet, saving each page as it is drawn
        (after an interruption, calling this again goes on where it stopped).

        Args:
            book_id: the book's id (from /new_book or /list_books)
            candidates: pictures per page to choose from (1 to 4)
            width: picture width in pixels (0: the style's SDXL size)
            height: picture height in pixels (0: the style's SDXL size)
            steps: denoising steps (0: the style's)
        """
        who = identify(settings, profile, token)
        book = illustrate_book(settings, who.user, book_id or "",
                               illustrate_config(candidates, width, height, steps),
                               token=who.token, on_progress=progress_bar(progress))
        return book.to_json()

    @user_errors
    def illustrate_page_api(book_id: str, page: int, scene: str = "", seed: int = -1,
                            candidates: int = 1, width: int = 0, height: int = 0,
                            steps: int = 0, profile: Optional[gr.OAuthProfile] = None,
                            token: Optional[gr.OAuthToken] = None,
                            progress=gr.Progress()) -> dict:
        """Draw new pictures for one page, with an edited scene or a chosen seed; the first
        new picture becomes the page's picture and the others stay to choose from.

        Args:
            book_id: the book's id
            page: page number, from 1
            scene: a new scene prompt ("" keeps the page's); names become the characters
            seed: seed of the first new picture (-1: a fresh one)
            candidates: how many new pictures (1 to 4)
            width: picture width in pixels (0: the style's SDXL size)
            height: picture height in pixels (0: the style's SDXL size)
            steps: denoising steps (0: the style's)
        """
        who = identify(settings, profile, token)
        progress(None, desc=f"drawing page {int(page or 0)}")
        book = regenerate_page(settings, who.user, book_id or "", int(page or 0),
                               illustrate_config(candidates, width, height, steps),
                               scene=(scene or "").strip() or None,
                               seed=None if seed is None or seed < 0 else int(seed),
                               token=who.token)
        return book.to_json()

    @user_errors
    def choose_candidate_api(book_id: str, page: int, candidate: int,
                             profile: Optional[gr.OAuthProfile] = None,
                             token: Optional[gr.OAuthToken] = None) -> dict:
        """Make one of a page's pictures the one the book shows.

        Args:
            book_id: the book's id
            page: page number, from 1
            candidate: picture number, from 1, in the order drawn
        """
        who = identify(settings, profile, token)
        return choose_candidate(settings, who.user, book_id or "", int(page or 0),
                                int(candidate or 0)).to_json()

    @user_errors
    def save_scenes(book_id: str, rows: list, profile: Optional[gr.OAuthProfile] = None,
                    token: Optional[gr.OAuthToken] = None) -> dict:
        who = identify(settings, profile, token)
        book = BookStore(settings, who.user).get(book_id or "")
        for number, row in enumerate(rows[:len(book.pages)], start=1):
            scene = str(row[2] or "").strip()
            if scene and scene != book.page(number).scene:
                book = set_page_scene(settings, who.user, book.id, number, scene)
        return book.to_json()

    @user_errors
    def open_book(book_id: str, profile: Optional[gr.OAuthProfile] = None,
                  token: Optional[gr.OAuthToken] = None) -> dict:
        who = identify(settings, profile, token)
        return BookStore(settings, who.user).get(book_id).to_json() if book_id else {}

    def stored_book(result: dict, profile: Optional[gr.OAuthProfile],
                    token: Optional[gr.OAuthToken]) -> tuple[str, Optional[BookStore],
                                                             Optional[Book]]:
        """The book a result names, read again from the asking user's own store."""
        who = identify_quietly(settings, profile, token)
        if not result or who is None:
            return "", None, None
        store = BookStore(settings, who.user)
        try:
            return who.user, store, store.get(result["id"])
        except StoreError:  # deleted meanwhile, in another tab
            return who.user, store, None

    def show_book(result: dict, page: float, profile: Optional[gr.OAuthProfile] = None,
                  token: Optional[gr.OAuthToken] = None):
        user, store, book = stored_book(result, profile, token)
        if book is None:
            return [gr.update()] * 6
        rows = [[n, p.text, p.scene, ", ".join(p.characters) or "nobody"]
                for n, p in enumerate(book.pages, start=1)]
        drawn = [n for n, p in enumerate(book.pages, start=1) if p.illustrated]
        pictures = [(picture(store.image_path(book, book.page(n).image)), f"Page {n}")
                    for n in drawn]
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
        number = min(max(int(page or 1), 1), len(book.pages))
        return (gr.update(choices=book_choices(settings, user), value=book.id),
                gr.update(value=rows, visible=True),
                gr.update(value=pictures, visible=bool(pictures)), drawn, note,
                page_candidates(store, book, number))

    def page_candidates(store: BookStore, book: Book, number: int):
        page = book.page(number)
        shown = [(picture(store.image_path(book, c.file)),
                  f"Picture {i}" + (" (in the book)" if c.file == page.image else ""))
                 for i, c in enumerate(page.candidates, start=1)]
        return gr.update(value=shown, visible=bool(shown),
                         label=f"Page {number}'s pictures: click one to put it in the book")

    def pick_page(drawn: list, result: dict, evt: gr.SelectData,
                  profile: Optional[gr.OAuthProfile] = None,
                  token: Optional[gr.OAuthToken] = None):
        _, store, book = stored_book(result, profile, token)
        if book is None or evt.index is None or evt.index >= len(drawn):
            return gr.update(), gr.update(), gr.update(), gr.update()
        number = drawn[evt.index]
        return (number, book.page(number).scene, page_candidates(store, book, number),
                gr.update(open=True))

    def candidate_number(evt: gr.SelectData) -> int:
        return evt.index + 1

    def refresh(current: Optional[str], profile: Optional[gr.OAuthProfile] = None,
                token: Optional[gr.OAuthToken] = None):
        who = identify_quietly(settings, profile, token)
        if who is None:
            return gr.update(choices=[]), gr.update(choices=[])
        names = [c.name for c in CharacterStore(settings, who.user).list()]
        return choices(book_choices(settings, who.user), current), gr.update(choices=names)

    with gr.Tab("3 · Story", id="story") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            title = gr.Textbox(label="Title", placeholder="Mia's Day at the Sea", scale=3)
            style = gr.Dropdown([(s.label, name) for name, s in styles.items()],
                                value=DEFAULT_STYLE, label="Art style", scale=1,
                                allow_custom_value=True)  # the engine names the styles
        story = gr.Textbox(label="Story", lines=9, placeholder=EXAMPLE)
        with gr.Accordion("Draft it for me", open=False):
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
                candidates = gr.Slider(1, MAX_CANDIDATES, value=1, step=1,
                                       label="Pictures per page to choose from")
                seed = gr.Number(-1, precision=0, minimum=-1, label="Book seed (-1: random)")
            with gr.Row():
                width = gr.Number(0, precision=0, minimum=0, label="Width (0: the style's)")
                height = gr.Number(0, precision=0, minimum=0, label="Height (0: the style's)")
                steps = gr.Number(0, precision=0, minimum=0, label="Steps (0: the style's)")
        make_button = gr.Button("Make the pages", variant="primary")
        with gr.Row(equal_height=True):
            book_id = own_choice("Book", "3f9c1a2b7d4e6f80", scale=3,
                                info="The book you are working on; pick one to continue it")
            illustrate_button = gr.Button("Illustrate all pages", variant="primary", scale=1)
        book = gr.JSON(visible=False)
        note = gr.Markdown(min_height=STATUS_HEIGHT)
        pages = gr.Dataframe(headers=PAGE_HEADERS, type="array", interactive=True,
                             static_columns=[0, 1, 3], wrap=True, row_count=0, visible=False,
                             column_widths=["8%", "40%", "40%", "12%"], label="Pages",
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
            scene = gr.Textbox(label="New scene prompt (empty: keep the page's)", lines=2)
            redraw_button = gr.Button("Redraw this page", size="sm")
            page_choices = gr.Gallery(columns=4, height=330, allow_preview=False,
                                      visible=False, object_fit="contain", fit_columns=False,
                                      buttons=[])
        candidate = gr.Number(1, precision=0, visible=False, label="Picture")

    drawing = [candidates, width, height, steps]
    shown = [book_id, pages, page_pictures, drawn, note, page_choices]
    draft_button.click(draft_story_api, [premise, cast, draft_pages, draft_seed], drafted,
                       show_progress_on=story, **public(draft_story_api, "draft_story"),
                       **GPU).success(
        lambda result: result["story"], drafted, story, **PRIVATE)
    make_button.click(new_book_api, [title, story, style, seed], book, show_progress_on=note,
                      **public(new_book_api, "new_book")).success(
        show_book, [book, page], shown, **PRIVATE)
    illustrate_button.click(illustrate_book_api, [book_id, *drawing], book, show_progress_on=note,
                            **public(illustrate_book_api, "illustrate_book"), **GPU).success(
        show_book, [book, page], shown, **PRIVATE)
    redraw_button.click(illustrate_page_api, [book_id, page, scene, redraw_seed, *drawing],
                        book, show_progress_on=[note, page_choices],
                        **public(illustrate_page_api, "illustrate_page"), **GPU).success(
        show_book, [book, page], shown, **PRIVATE)
    page_choices.select(candidate_number, None, candidate, **PRIVATE).then(
        choose_candidate_api, [book_id, page, candidate], book, show_progress_on=page_choices,
        **public(choose_candidate_api, "choose_candidate")).success(
        show_book, [book, page], shown, **PRIVATE)
    pages.input(save_scenes, [book_id, pages], book, **PRIVATE).success(
        show_book, [book, page], shown, **PRIVATE)
    page_pictures.select(pick_page, [drawn, book], [page, scene, page_choices, redraw],
                         **PRIVATE)
    book_id.input(open_book, book_id, book, **PRIVATE).success(
        show_book, [book, page], shown, **PRIVATE)
    for opened in (tab.select, demo.load):  # the book the dropdown shows, with its pages
        opened(refresh, book_id, [book_id, cast], **PRIVATE).then(
            open_book, book_id, book, **PRIVATE).success(show_book, [book, page], shown, **PRIVATE)
