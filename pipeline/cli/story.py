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


def _illustrate_config(args: argparse.Namespace):
    from ..illustrate import IllustrateConfig

    width, height = args.size or (None, None)
    return IllustrateConfig(candidates=args.candidates, adapter_weight=args.adapter_weight,
                            width=width, height=height, steps=args.steps)


def _illustrate(args: argparse.Namespace, settings: Settings) -> Result:
    from ..book import BookStore
    from ..hub.tokens import token_from_env
    from ..illustrate import illustrate_book, new_book
    from ..styles import DEFAULT_STYLE

    config = _illustrate_config(args)
    if args.book:
        if args.title or args.story or args.style or args.seed is not None:
            raise ValueError("use --book BOOK_ID to continue a book, or --title and --story "
                             "(with --style and --seed) to start one, not both")
        book = BookStore(settings, args.user).get(args.book)
    else:
        if not (args.title and args.story):
            raise ValueError("--title and --story start a book; --book BOOK_ID continues one")
        story = (sys.stdin.read() if args.story == "-"
                 else Path(args.story).read_text(encoding="utf-8"))
        book = new_book(settings, args.user, args.title, story, args.style or DEFAULT_STYLE,
                        args.seed)
    print(f"book {book.id}: {len(book.missing)} of {counted(len(book.pages), 'page')} to "
          "illustrate; if interrupted, continue with: "
          f"python -m pipeline illustrate --book {book.id}",
          file=sys.stderr)
    with progress_bar(book.title) as show:
        book = illustrate_book(settings, args.user, book.id, config, token=token_from_env(),
                               on_progress=show)
    folder = BookStore(settings, args.user).folder(book.id)
    return Result(book.to_json(), f"Illustrated {book.title!r}: "
                                  f"{counted(len(book.pages), 'page')}, book id {book.id} "
                                  f"(pictures in {folder})")


def _illustrate_page(args: argparse.Namespace, settings: Settings) -> Result:
    from ..hub.tokens import token_from_env
    from ..illustrate import regenerate_page

    book = regenerate_page(settings, args.user, args.book_id, args.page,
                           _illustrate_config(args), scene=args.scene, seed=args.seed,
                           token=token_from_env())
    page = book.page(args.page)
    return Result(book.to_json(), f"page {args.page} of book {book.id}: new picture "
                                  f"{page.image} (seed {page.seed}); it has "
                                  f"{len(page.candidates)} pictures to choose from")


def _choose_candidate(args: argparse.Namespace, settings: Settings) -> Result:
    from ..illustrate import choose_candidate

    book = choose_candidate(settings, args.user, args.book_id, args.page, args.candidate)
    return Result(book.to_json(), f"page {args.page} of book {book.id} now shows "
                                  f"{book.page(args.page).image}")


def _draft_story(args: argparse.Namespace, settings: Settings) -> Result:
    from ..characters import CharacterStore
    from ..draft import draft_story

    store = CharacterStore(settings, args.user)
    characters = [store.get(name) for name in args.characters.split(",") if name.strip()]
    with progress_bar("drafting") as show:
        draft = draft_story(settings, args.premise, characters, args.pages, seed=args.seed,
                            on_progress=show)
    for warning in draft.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return Result(draft.to_json(), draft.story_text())


def _styles(args: argparse.Namespace, settings: Settings) -> Result:
    from ..styles import load_styles

    styles = load_styles()
    return Result({name: dataclasses.asdict(style) for name, style in styles.items()},
                  "\n".join(f"{name:12} {style.label} ({style.width}x{style.height})"
                            for name, style in styles.items()))


def register(sub) -> None:
    def drawing_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--candidates", type=int, default=1,
                            help="pictures per page to choose from (1 to 4; default 1)")
        parser.add_argument("--adapter-weight", type=float, default=1.0,
                            help="strength of each character's adapter (default 1.0)")
        parser.add_argument("--size", type=_size, default=None,
                            help="WIDTHxHEIGHT instead of the style's SDXL size (e.g. 64x64 "
                                 "with the tiny test model)")
        parser.add_argument("--steps", type=int, default=None,
                            help="denoising steps instead of the style's")

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
    parser.add_argument("--scene", help="a new scene prompt (names become the characters)")
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
