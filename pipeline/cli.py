"""`python -m pipeline ...`: the command-line front door onto the same functions the app uses.

Every subcommand returns a `Result`: plain data for `--json` and a line of text for people.
Errors from the engine (ValueError, RuntimeError) print one clear line and exit with 1;
wrong arguments exit with 2, as argparse does.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .settings import Settings


@dataclass
class Result:
    """What a subcommand produced: `data` for --json, `text` for a terminal."""

    data: Any
    text: str


Handler = Callable[[argparse.Namespace, Settings], Result]


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """--data-dir, --user and --json, accepted before or after the subcommand."""
    default = argparse.SUPPRESS if suppress else None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data-dir", type=Path, default=default,
                        help="where characters and books live (default: TALEWEAVER_DATA_DIR or ./data)")
    parser.add_argument("--user", default=default,
                        help="whose data to use (default: TALEWEAVER_LOCAL_USER, 'local')")
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="print machine-readable JSON instead of text")
    return parser


def _command(sub, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help,
                            parents=[_common_options(suppress=True)])
    parser.set_defaults(handler=handler)
    return parser


def _tiny_model(args: argparse.Namespace, settings: Settings) -> Result:
    from .testing import save_tiny_model

    out = save_tiny_model(args.out_dir, seed=args.seed, channels=tuple(args.channels))
    return Result({"path": str(out)},
                  f"Tiny test model saved to {out}. Try: TALEWEAVER_BASE_MODEL={out} python app.py")


def _register_foundation(sub) -> None:
    parser = _command(sub, "tiny-model", _tiny_model,
                      "build a tiny random SDXL-architecture pipeline (for tests and CPU demos)")
    parser.add_argument("out_dir", type=Path, help="folder to save it in")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    parser.add_argument("--channels", type=int, nargs=2, default=(32, 64), metavar=("C1", "C2"),
                        help="UNet block widths (default 32 64); wider makes a larger random "
                             "model for timing, e.g. 320 640")


def _add_character(args: argparse.Namespace, settings: Settings) -> Result:
    import shlex

    from .characters import NotEnoughPhotos, add_character

    try:
        with _progress_bar(f"checking {args.name}'s photos") as show:
            added = add_character(settings, args.user, args.name, args.kind, args.description,
                                  args.photos, keep_originals=args.keep_originals,
                                  on_progress=show)
    except NotEnoughPhotos as err:
        if args.json:
            print(json.dumps({"error": str(err).splitlines()[0],
                              "photos": [r.to_json() for r in err.reports]},
                             indent=2, ensure_ascii=False))
        raise
    character = added.character
    accepted = sum(report.accepted for report in added.reports)
    lines = [f"{'ok ' if r.accepted else 'NO '} {r.describe()}" for r in added.reports]
    lines.append(f"Saved {character.name} ({character.kind}) with {accepted} of "
                 f"{len(added.reports)} photos; trigger token {character.trigger!r}. "
                 f"Next: python -m pipeline train {shlex.quote(character.name)}")
    return Result(added.to_json(), "\n".join(lines))


def _characters(args: argparse.Namespace, settings: Settings) -> Result:
    from .characters import CharacterStore

    store = CharacterStore(settings, args.user)
    found = store.list()
    data = [{**c.to_json(), "has_adapter": store.has_adapter(c)} for c in found]
    lines = [f"{c.name} ({c.kind}): {len(c.crops)} photos, trigger {c.trigger!r}, "
             f"{'adapter trained' if store.has_adapter(c) else 'not trained yet'}"
             for c in found]
    return Result(data, "\n".join(lines) or "No characters yet: add one with add-character.")


def _delete_character(args: argparse.Namespace, settings: Settings) -> Result:
    from .characters import CharacterStore

    store = CharacterStore(settings, args.user)
    hub = None
    if args.hub:  # the Hub repo first: if that fails, nothing is deleted and a retry works
        from .hub import delete_hub_repo, token_from_env

        hub = delete_hub_repo(settings, args.user, store.get(args.name), token_from_env())
        if hub.status != "deleted":
            raise RuntimeError(f"{hub.message} Nothing was deleted.")
    character = store.delete(args.name)
    return Result({"deleted": character.name, "slug": character.slug,
                   "hub_repo_deleted": hub.repo_id if hub else None},
                  f"Deleted {character.name} with all its photos, crops, checkpoints and adapter "
                  "on this machine." + (f" {hub.message}." if hub else ""))


def _register_characters(sub) -> None:
    parser = _command(sub, "add-character", _add_character,
                      "make a character from 3 to 20 photos (about 8 is best); prints a "
                      "verdict on each photo")
    parser.add_argument("--name", required=True, help="the character's name, e.g. Mia")
    parser.add_argument("--kind", required=True,
                        help="who it is: girl, boy, woman, man, baby, dog, cat or a few words")
    parser.add_argument("--description", default="",
                        help="the look every page reuses, e.g. 'curly red hair, yellow raincoat'")
    parser.add_argument("--keep-originals", action="store_true",
                        help="also keep the uploaded files (by default only the crops are kept)")
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO",
                        help="photo files: JPEG, PNG, HEIC, WebP, GIF, BMP or TIFF")
    _command(sub, "characters", _characters, "list your characters")
    parser = _command(sub, "delete-character", _delete_character,
                      "delete a character: its photos, crops, checkpoints and local adapter")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--hub", action="store_true",
                        help="also delete its private Hub repo (with the token in HF_TOKEN)")


def _books(args: argparse.Namespace, settings: Settings) -> Result:
    from .book import BookStore

    items = BookStore(settings, args.user).gallery()
    data = [{**dataclasses.asdict(item), "thumbnail": item.thumbnail and str(item.thumbnail)}
            for item in items]
    lines = [f"{item.id}  {item.title}  ({item.illustrated}/{item.pages} pages illustrated, "
             f"made {item.created[:10]})" for item in items]
    return Result(data, "\n".join(lines) or "No books yet.")


def _export(args: argparse.Namespace, settings: Settings) -> Result:
    from .book import BookStore
    from .export import export_book

    store = BookStore(settings, args.user)
    done = export_book(store, store.get(args.book_id), args.out, draft=args.draft)
    lines = [f"Saved {done.path} ({done.pages} pages)."]
    if done.text_only:
        lines.append("Draft: no picture yet on page(s) " + ", ".join(map(str, done.text_only)))
    if done.dropped:
        lines.append("Left out characters the book font can't print: " + " ".join(done.dropped))
    return Result({**dataclasses.asdict(done), "path": str(done.path)}, "\n".join(lines))


def _delete_book(args: argparse.Namespace, settings: Settings) -> Result:
    from .book import BookStore

    store = BookStore(settings, args.user)
    book = store.get(args.book_id)
    store.delete(book.id)
    return Result({"deleted": book.id, "title": book.title},
                  f"Deleted {book.title!r} ({book.id}) with all its pictures.")


def _register_books(sub) -> None:
    _command(sub, "books", _books, "list your books, newest first")
    parser = _command(sub, "export", _export, "save a book as a printable PDF or an HTML file")
    parser.add_argument("book_id", help="the book's id (see `books`)")
    parser.add_argument("--out", type=Path, required=True,
                        help="file to write: FILE.pdf (square 8.5 in pages) or FILE.html")
    parser.add_argument("--draft", action="store_true",
                        help="allow pages without a picture yet, set as text-only pages")
    parser = _command(sub, "delete-book", _delete_book, "delete a book and all its pictures")
    parser.add_argument("book_id", help="the book's id (see `books`)")


def _push(args: argparse.Namespace, settings: Settings) -> Result:
    from .characters import CharacterStore
    from .hub import push_adapter, token_from_env

    character = CharacterStore(settings, args.user).get(args.name)
    result = push_adapter(settings, args.user, character, token_from_env(),
                          include_validation_image=args.with_validation_image)
    if result.status == "failed":
        raise RuntimeError(result.message)
    return Result(result.to_json(), result.message)


def _pull(args: argparse.Namespace, settings: Settings) -> Result:
    from .characters import CharacterStore
    from .hub import ensure_local_adapter, install_adapter, token_from_env

    store = CharacterStore(settings, args.user)
    character = store.get(args.name)
    if args.source is not None:
        folder, source = install_adapter(settings, args.user, character, args.source), "folder"
    else:
        source = "local" if store.has_adapter(character) else "hub"
        folder = ensure_local_adapter(settings, args.user, character, token_from_env())
    how = {"folder": f"copied from {args.source}", "local": "already on this machine",
           "hub": "downloaded from its private Hub repo"}[source]
    return Result({"path": str(folder), "source": source},
                  f"{character.name}'s adapter is {how}: {folder}")


def _register_hub(sub) -> None:
    parser = _command(sub, "push", _push, "upload a character's adapter to a private repo in "
                      "your Hugging Face namespace, with the token in HF_TOKEN")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--with-validation-image", action="store_true",
                        help="also upload validation.png (it shows the person; off by default)")
    parser = _command(sub, "pull", _pull, "make sure a character's adapter is on this machine: "
                      "download it from its private repo (HF_TOKEN) or copy it from a folder")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="a folder shaped like the adapter repo (e.g. a git clone of it)")


@contextlib.contextmanager
def _progress_bar(description: str) -> Iterator[Callable[[Any], None]]:
    """A ProgressFn drawing a tqdm bar on stderr, closed when the block ends."""
    from tqdm import tqdm

    bar = None

    def show(progress) -> None:
        nonlocal bar
        if bar is None or bar.unit != progress.unit:
            if bar is not None:
                bar.close()
            bar = tqdm(total=progress.total, initial=progress.done, unit=progress.unit,
                       desc=description, file=sys.stderr)
        bar.n = progress.done
        loss = [] if progress.loss is None else [f"loss {progress.loss:.4f}"]
        bar.set_postfix_str(" · ".join(loss + ([progress.message] if progress.message else [])))

    try:
        yield show
    finally:
        if bar is not None:
            bar.close()


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1024x1024")
    return int(width), int(height)


def _illustrate_config(args: argparse.Namespace):
    from .illustrate import IllustrateConfig

    width, height = args.size or (None, None)
    return IllustrateConfig(candidates=args.candidates, adapter_weight=args.adapter_weight,
                            width=width, height=height, steps=args.steps)


def _illustrate(args: argparse.Namespace, settings: Settings) -> Result:
    from .book import BookStore
    from .hub import token_from_env
    from .illustrate import illustrate_book, new_book
    from .styles import DEFAULT_STYLE

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
    print(f"book {book.id}: {len(book.missing)} of {len(book.pages)} pages to illustrate; "
          f"if interrupted, continue with: python -m pipeline illustrate --book {book.id}",
          file=sys.stderr)
    with _progress_bar(book.title) as show:
        book = illustrate_book(settings, args.user, book.id, config, token=token_from_env(),
                               on_progress=show)
    folder = BookStore(settings, args.user).folder(book.id)
    return Result(book.to_json(), f"Illustrated {book.title!r}: {len(book.pages)} pages, "
                                  f"book id {book.id} (pictures in {folder})")


def _illustrate_page(args: argparse.Namespace, settings: Settings) -> Result:
    from .hub import token_from_env
    from .illustrate import regenerate_page

    book = regenerate_page(settings, args.user, args.book_id, args.page,
                           _illustrate_config(args), scene=args.scene, seed=args.seed,
                           token=token_from_env())
    page = book.page(args.page)
    return Result(book.to_json(), f"page {args.page} of book {book.id}: new picture "
                                  f"{page.image} (seed {page.seed}); it has "
                                  f"{len(page.candidates)} pictures to choose from")


def _choose_candidate(args: argparse.Namespace, settings: Settings) -> Result:
    from .illustrate import choose_candidate

    book = choose_candidate(settings, args.user, args.book_id, args.page, args.candidate)
    return Result(book.to_json(), f"page {args.page} of book {book.id} now shows "
                                  f"{book.page(args.page).image}")


def _draft_story(args: argparse.Namespace, settings: Settings) -> Result:
    from .characters import CharacterStore
    from .draft import draft_story

    store = CharacterStore(settings, args.user)
    characters = [store.get(name) for name in args.characters.split(",") if name.strip()]
    with _progress_bar("drafting") as show:
        draft = draft_story(settings, args.premise, characters, args.pages, seed=args.seed,
                            on_progress=show)
    for warning in draft.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return Result(draft.to_json(), draft.story_text())


def _styles(args: argparse.Namespace, settings: Settings) -> Result:
    from .styles import load_styles

    styles = load_styles()
    return Result({name: dataclasses.asdict(style) for name, style in styles.items()},
                  "\n".join(f"{name:12} {style.label} ({style.width}x{style.height})"
                            for name, style in styles.items()))


def _register_story(sub) -> None:
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

    parser = _command(sub, "illustrate", _illustrate,
                      "illustrate a story page by page (or continue an interrupted book)")
    parser.add_argument("--title", help="the book's title")
    parser.add_argument("--story", help="story text file (- reads standard input): pages apart "
                                        "by blank lines or ---; optional 'Scene: ...' lines")
    parser.add_argument("--style", help="art style (see `styles`; default watercolor)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the book's seed (default: random, recorded in the book)")
    parser.add_argument("--book", help="continue this book from its first page without a picture")
    drawing_options(parser)
    parser = _command(sub, "illustrate-page", _illustrate_page,
                      "draw new pictures for one page, with an edited scene or a new seed")
    parser.add_argument("book_id", help="the book's id")
    parser.add_argument("page", type=int, help="page number, from 1")
    parser.add_argument("--scene", help="a new scene prompt (names become the characters)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the first new picture (default: a fresh one)")
    drawing_options(parser)
    parser = _command(sub, "choose-candidate", _choose_candidate,
                      "make one of a page's pictures the one the book shows")
    parser.add_argument("book_id", help="the book's id")
    parser.add_argument("page", type=int, help="page number, from 1")
    parser.add_argument("candidate", type=int, help="picture number, from 1, in the order drawn")
    parser = _command(sub, "draft-story", _draft_story,
                      "draft a story with the story language model (prints it in the story "
                      "format, ready to edit and illustrate)")
    parser.add_argument("--premise", required=True, help="what the story is about")
    parser.add_argument("--characters", default="",
                        help="comma-separated names of your characters, e.g. Mia,Rex")
    parser.add_argument("--pages", type=int, required=True, help="number of pages")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    _command(sub, "styles", _styles, "list the art styles")


def _setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE for --set: the value as JSON (numbers, true/false, null), else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. snr_gamma=0")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _train(args: argparse.Namespace, settings: Settings) -> Result:
    import os

    from .characters import CharacterStore
    from .train import estimate_character, train_character
    from .train_config import preset_config, preset_for_kind

    character = CharacterStore(settings, args.user).get(args.name)
    overrides = dict(args.set or ())
    for field in ("steps", "rank", "learning_rate", "batch_size", "prior_preservation",
                  "train_text_encoder", "quantize", "seed"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    config = preset_config(args.preset or preset_for_kind(character.kind),
                           max(1, len(character.crops)), **overrides)
    estimate = estimate_character(settings, args.user, character.name, config)
    data = {"character": character.name, "config": config.to_dict(),
            "estimate": dataclasses.asdict(estimate)}
    if args.estimate:
        return Result(data, f"{character.name}: {estimate.describe()}")
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process and not args.json:
        print(f"Training {character.name} ({config.preset} preset, {config.steps} steps): "
              f"{estimate.describe()}", file=sys.stderr)
    with _progress_bar(f"training {character.name}") as show:
        result = train_character(settings, args.user, character.name, config,
                                 chunk_steps=args.chunk_steps,
                                 max_chunks=1 if args.chunk_steps else None,
                                 on_progress=show if main_process else None)
    data.update(dataclasses.asdict(result), validation_image=str(result.validation_image))
    loss = "" if result.loss is None else f", loss {result.loss:.4f}"
    if result.done:
        text = (f"{character.name}'s adapter is ready after {result.step} steps{loss}: "
                f"{result.adapter_dir} (see {result.validation_image.name})")
    else:
        text = (f"{character.name}: step {result.step} of {result.total}{loss}; "
                "run the same command again to go on")
    return Result(data, "\n".join([*(f"warning: {w}" for w in result.warnings), text]))


def _register_train(sub) -> None:
    parser = _command(sub, "train", _train, "train (or go on training) a character's LoRA adapter "
                      "on the base model; run it again to continue an unfinished run")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--preset", choices=("person", "pet", "object"), default=None,
                        help="what the character is (default: from its kind, e.g. dog -> pet)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps in all (default: the preset's, scaled by photos)")
    parser.add_argument("--chunk-steps", type=int, default=None, metavar="K",
                        help="train at most K steps, save a checkpoint and stop")
    parser.add_argument("--rank", type=int, default=None, help="LoRA rank")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--prior-preservation", action=argparse.BooleanOptionalAction,
                        default=None, help="also learn base-model images of the kind")
    parser.add_argument("--train-text-encoder", action=argparse.BooleanOptionalAction,
                        default=None, help="LoRA on the text encoders too")
    parser.add_argument("--quantize", choices=("none", "8bit", "4bit"), default=None,
                        help="store the frozen base UNet in 8 or 4 bits (CUDA only)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--set", type=_setting, action="append", metavar="KEY=VALUE",
                        help="any other training setting, e.g. --set snr_gamma=0 (repeatable)")
    parser.add_argument("--estimate", action="store_true",
                        help="only print the GPU-time estimate and the settings")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Taleweaver: personalised, illustrated storybooks from family photos.",
        parents=[_common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_foundation(sub)
    _register_characters(sub)
    _register_books(sub)
    _register_hub(sub)
    _register_story(sub)
    _register_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.data_dir is not None:
            settings = dataclasses.replace(settings, data_dir=args.data_dir)
        if args.user is None:
            args.user = settings.local_user
        result = args.handler(args, settings)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.data, indent=2, ensure_ascii=False, default=str))
    else:
        print(result.text)
    return 0
