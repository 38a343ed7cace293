"""CLI commands for stories: illustrate, illustrate-page, choose-candidate, draft-story, styles."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..progress import counted
from ..settings import Settings
from .core import Result, command, progress_bar


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1024x1024")
    return int(width), int(height)


def _options(args: argparse.Namespace):
    from ..actions.drawing import drawing_options

    width, height = args.size or (0, 0)
    return drawing_options(args.candidates, width, height, args.steps or 0, args.adapter_weight,
                           face_pass=args.face_pass, face_strength=args.face_strength,
                           face_margin=args.face_margin,
                           redraw_below=args.redraw_below, redraw_tries=args.redraw_tries)


def _illustrate(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import DEFAULT_STYLE, book_json, get_book, new_book, waiting_characters
    from ..actions.drawing import estimate_drawing, illustrate
    from ..actions.system import own_token

    options = _options(args)
    if args.book:
        if args.title or args.story or args.style or args.seed is not None:
            raise ValueError("use --book BOOK_ID to continue a book, or --title and --story "
                             "(with --style and --seed) to start one, not both")
        book = get_book(settings, args.user, args.book)
    else:
        if not (args.title and args.story):
            raise ValueError("--title and --story start a book; --book BOOK_ID continues one")
        story = (sys.stdin.read() if args.story == "-"
                 else Path(args.story).read_text(encoding="utf-8"))
        book = new_book(settings, args.user, args.title, story, args.style or DEFAULT_STYLE,
                        args.seed)
    for waiting in waiting_characters(settings, args.user, book):
        print(f"warning: {waiting}", file=sys.stderr)
    print(f"book {book.id}: {estimate_drawing(settings, args.user, book.id, options).describe()}"
          f". If interrupted, continue with: python -m pipeline illustrate --book {book.id}",
          file=sys.stderr)
    with progress_bar(book.title) as show:
        book = illustrate(settings, args.user, book.id, options, token=own_token(),
                          on_progress=show)
    lines = [f"Illustrated {book.title!r}: {counted(len(book.pages), 'page')}, book id "
             f"{book.id} (see it with: python -m pipeline export {book.id} --out book.pdf)"]
    return Result(book_json(settings, args.user, book), "\n".join(lines + _page_notes(book)))


def _page_notes(book) -> list[str]:
    """Each page's likeness, or why it waits, for people."""
    from ..actions.likeness import book_summary, page_lines, summary_line

    notes = []
    for number, page in enumerate(book.pages, start=1):
        if page.waiting:
            notes.append(f"page {number}: waiting: {page.waiting}")
        elif page.chosen is not None and page.chosen.score:
            notes.append(f"page {number}: " + "; ".join(page_lines(page.chosen.score)))
    summary = summary_line(book_summary(book))
    return notes + ([f"likeness across the book: {summary}"] if summary else [])


def _illustrate_page(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import book_json
    from ..actions.drawing import redraw_page
    from ..actions.system import own_token

    book = redraw_page(settings, args.user, args.book_id, args.page, _options(args),
                       scene=args.scene, seed=args.seed, token=own_token())
    page = book.page(args.page)
    lines = [f"page {args.page} of book {book.id}: new picture {page.image} (seed "
             f"{page.seed}); it has {len(page.candidates)} pictures to choose from"]
    if page.chosen and page.chosen.score:
        from ..actions.likeness import page_lines

        lines += page_lines(page.chosen.score)
    return Result(book_json(settings, args.user, book), "\n".join(lines))


def _set_order(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import book_json
    from ..actions.drawing import set_order

    book = set_order(settings, args.user, args.book_id, args.page,
                     [name for name in args.order.split(",") if name.strip()])
    order = book.page(args.page).order
    return Result(book_json(settings, args.user, book),
                  f"page {args.page}: " + (f"from left to right {', '.join(order)}" if order
                                           else "in the order the story names them"))


def _likeness(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.likeness import score_images

    scored = score_images(settings, args.user, args.characters.split(","), args.images)
    text = "\n".join(f"{item['image']}:\n  " + item["describe"].replace("\n", "\n  ")
                     for item in scored)
    return Result([{k: v for k, v in item.items() if k != "describe"} for item in scored], text)


def _rescore(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import book_json
    from ..actions.likeness import rescore

    with progress_bar("scoring") as show:
        book = rescore(settings, args.user, args.book_id, on_progress=show)
    return Result(book_json(settings, args.user, book), "\n".join(
        [f"Scored every picture of {book.title!r} again."] + _page_notes(book)))


def _choose_candidate(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import book_json
    from ..actions.drawing import choose_picture

    book = choose_picture(settings, args.user, args.book_id, args.page, args.candidate)
    return Result(book_json(settings, args.user, book),
                  f"page {args.page} of book {book.id} now shows {book.page(args.page).image}")


def _draft_story(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import draft

    with progress_bar("drafting") as show:
        drafted = draft(settings, args.user, args.premise, args.characters.split(","),
                        args.pages, seed=args.seed, on_progress=show)
    for warning in drafted.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return Result(drafted.to_json(), drafted.story_text())


def _styles(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import styles

    found = styles()
    return Result({name: dataclasses.asdict(style) for name, style in found.items()},
                  "\n".join(f"{name:12} {style.label} ({style.width}x{style.height})"
                            for name, style in found.items()))


def register(sub) -> None:
    def drawing_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--candidates", type=int, default=1,
                            help="pictures per page to choose from (1 to 4; default 1)")
        parser.add_argument("--adapter-weight", type=float, default=1.0,
                            help="strength of each character's adapter (default 1.0)")
        parser.add_argument("--size", type=_size, default=None,
                            help="WIDTHxHEIGHT (default: the style's SDXL size on a GPU; on a "
                                 "CPU its shape at most 512 px)")
        parser.add_argument("--steps", type=int, default=None,
                            help="denoising steps (default: the style's on a GPU, 12 at most "
                                 "on a CPU)")
        parser.add_argument("--face-pass", action=argparse.BooleanOptionalAction, default=None,
                            help="redraw each character's head with only its own adapter "
                                 "(default: TALEWEAVER_FACE_PASS, on)")
        parser.add_argument("--face-strength", type=float, default=None,
                            help="how much of each head the second pass redraws, above 0 to 1 "
                                 "(default: TALEWEAVER_FACE_PASS_STRENGTH, 0.5)")
        parser.add_argument("--face-margin", type=float, default=None,
                            help="room around each face in the redrawn square, in face sides "
                                 "(default: TALEWEAVER_FACE_PASS_MARGIN, 0.6)")
        parser.add_argument("--redraw-below", type=int, default=None, metavar="LIKENESS",
                            help="draw more seeds for a page whose weakest likeness is under "
                                 "this, 0 to 100 (default: TALEWEAVER_REDRAW_BELOW, 45)")
        parser.add_argument("--redraw-tries", type=int, default=None, metavar="K",
                            help="at most K more seeds for such a page (default: "
                                 "TALEWEAVER_REDRAW_TRIES: 2, none on ZeroGPU)")

    parser = command(sub, "illustrate", _illustrate,
                     "illustrate a story page by page (or continue an interrupted book)")
    parser.add_argument("--title", help="the book's title")
    parser.add_argument("--story", help="story text file (- reads standard input): pages apart "
                                        "by blank lines or ---; optional 'Scene: ...' lines")
    parser.add_argument("--style", help="art style (see `styles`; default watercolor)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the book's seed (default: random, recorded in the book)")
    parser.add_argument("--book", help="continue this book from its first page without a picture")
    drawing_options(parser)
    parser = command(sub, "illustrate-page", _illustrate_page,
                     "draw new pictures for one page, with an edited scene or a new seed")
    parser.add_argument("book_id", help="the book's id")
    parser.add_argument("page", type=int, help="page number, from 1")
    parser.add_argument("--scene", help="a new scene, in your words (names are the characters)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the first new picture (default: a fresh one)")
    drawing_options(parser)
    parser = command(sub, "choose-candidate", _choose_candidate,
                     "make one of a page's pictures the one the book shows")
    parser.add_argument("book_id", help="the book's id")
    parser.add_argument("page", type=int, help="page number, from 1")
    parser.add_argument("candidate", type=int, help="picture number, from 1, in the order drawn")
    parser = command(sub, "draft-story", _draft_story,
                     "draft a story with the story language model (prints it in the story "
                     "format, ready to edit and illustrate)")
    parser.add_argument("--premise", required=True, help="what the story is about")
    parser.add_argument("--characters", default="",
                        help="comma-separated names of your characters, e.g. Mia,Rex")
    parser.add_argument("--pages", type=int, required=True, help="number of pages")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    command(sub, "styles", _styles, "list the art styles")
    parser = command(sub, "set-order", _set_order,
                     "where a page's characters stand, left to right, the next time it is drawn")
    parser.add_argument("book_id", help="the book's id")
    parser.add_argument("page", type=int, help="page number, from 1")
    parser.add_argument("--order", required=True,
                        help="the page's characters from left to right, e.g. Grandma,Mia "
                             "('' goes back to the order the story names them)")
    parser = command(sub, "likeness", _likeness,
                     "score pictures as pages with these characters on them: found or not, "
                     "likeness 0-100, looks like another, copied")
    parser.add_argument("--characters", required=True,
                        help="comma-separated names of your characters on the pictures, "
                             "e.g. Mia,Grandma")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="picture files")
    parser = command(sub, "rescore", _rescore,
                     "score every picture of a book again; each page shows its best one "
                     "unless you chose it")
    parser.add_argument("book_id", help="the book's id")
