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
    from ..actions.books import drawing_options

    width, height = args.size or (0, 0)
    return drawing_options(args.candidates, width, height, args.steps or 0, args.adapter_weight)


def _illustrate(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import (DEFAULT_STYLE, book_json, get_book, illustrate, new_book,
                                 waiting_characters)
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
    print(f"book {book.id}: {len(book.missing)} of {counted(len(book.pages), 'page')} to "
          "illustrate; if interrupted, continue with: "
          f"python -m pipeline illustrate --book {book.id}",
          file=sys.stderr)
    with progress_bar(book.title) as show:
        book = illustrate(settings, args.user, book.id, options, token=own_token(),
                          on_progress=show)
    return Result(book_json(settings, args.user, book),
                  f"Illustrated {book.title!r}: {counted(len(book.pages), 'page')}, book id "
                  f"{book.id} (see it with: python -m pipeline export {book.id} --out "
                  "book.pdf)")


def _illustrate_page(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import book_json, redraw_page
    from ..actions.system import own_token

    book = redraw_page(settings, args.user, args.book_id, args.page, _options(args),
                       scene=args.scene, seed=args.seed, token=own_token())
    page = book.page(args.page)
    return Result(book_json(settings, args.user, book),
                  f"page {args.page} of book {book.id}: new picture {page.image} (seed "
                  f"{page.seed}); it has {len(page.candidates)} pictures to choose from")


def _choose_candidate(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import book_json, choose_picture

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
