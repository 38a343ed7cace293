"""CLI commands for characters: add-character, add-photos, change-character, characters,
delete-character."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from ..progress import counted
from ..settings import Settings
from .core import Result, command, progress_bar


def _add_character(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.characters import add_character

    added = _checking_photos(args, args.name, lambda show: add_character(
        settings, args.user, args.name, args.kind, args.description, args.photos,
        keep_originals=args.keep_originals, on_progress=show))
    character = added.character
    accepted = sum(report.accepted for report in added.reports)
    return Result(added.to_json(), _verdicts(added, f"Saved {character.name} ({character.kind}) "
                  f"with {accepted} of {len(added.reports)} photos; trigger token "
                  f"{character.trigger!r}."))


def _add_photos(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.characters import add_photos

    added = _checking_photos(args, args.name, lambda show: add_photos(
        settings, args.user, args.name, args.photos, keep_originals=args.keep_originals,
        on_progress=show))
    accepted = sum(report.accepted for report in added.reports)
    return Result(added.to_json(), _verdicts(added, f"Added {accepted} of {len(added.reports)} "
                  f"photos to {added.character.name}, who now has "
                  f"{counted(len(added.character.crops), 'photo')}."))


def _checking_photos(args: argparse.Namespace, name: str, add):
    """Run `add` with a progress bar; when too few photos can be used, --json prints every
    photo's verdict before the error."""
    from ..actions.characters import NotEnoughPhotos

    try:
        with progress_bar(f"checking {name}'s photos") as show:
            return add(show)
    except NotEnoughPhotos as err:
        if args.json:
            print(json.dumps({"error": str(err).splitlines()[0],
                              "photos": [r.to_json() for r in err.reports]},
                             indent=2, ensure_ascii=False))
        raise


def _verdicts(added, saved: str) -> str:
    """A line per photo, what was saved, and the next command."""
    name = shlex.quote(added.character.name)
    lines = [f"{'ok ' if r.accepted else 'NO '} {r.describe()}" for r in added.reports]
    lines.append(f"{saved} Next: python -m pipeline train {name}")
    if added.out_of_date:
        lines.append(f"Its adapter is out of date ({added.out_of_date}): train it again.")
    return "\n".join(lines)


def _change_character(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.characters import change_character

    if args.kind is None and args.description is None:
        raise ValueError("say what to change: --kind, --description (or both)")
    changed = change_character(settings, args.user, args.name, kind=args.kind,
                               description=args.description)
    character = changed.character
    text = f"{character.name} is a {character.kind}" + (
        f", looking: {character.description}." if character.description else ".")
    if changed.out_of_date:
        text += (f" Its adapter is out of date ({changed.out_of_date}): run python -m pipeline "
                 f"train {shlex.quote(character.name)}")
    return Result(changed.to_json(), text)


def _characters(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.characters import list_characters

    rows = list_characters(settings, args.user)
    lines = [f"{r.name} ({r.kind}): {r.photos} photos, trigger {r.trigger!r}, "
             + ("not trained yet" if not r.trained else
                f"adapter out of date ({r.out_of_date})" if r.out_of_date else "adapter trained")
             + (f", on the Hub as {r.hub_repo}" if r.hub_repo else "") for r in rows]
    return Result([r.to_json() for r in rows],
                  "\n".join(lines) or "No characters yet: add one with add-character.")


def _delete_character(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.characters import RepoNotDeleted, delete_character
    from ..actions.system import own_token
    from .hub import next_step

    try:
        deleted = delete_character(settings, args.user, args.name, own_token(),
                                   with_repo=args.hub)
    except RepoNotDeleted as err:
        again = f"delete-character {shlex.quote(args.name)} --hub"
        raise RuntimeError(f"{err} {next_step(err.result.reason, again)}") from None
    lines = [f"Deleted {deleted.name} with all its photos, crops, checkpoints and adapter on "
             "this machine." + (f" {deleted.hub.message}" if deleted.hub else "")]
    lines += [f"Book {book.id} ({book.title!r}) still names {deleted.name} on page"
              f"{'s' if len(book.pages) > 1 else ''} {', '.join(map(str, book.pages))}."
              for book in deleted.books]
    return Result(deleted.to_json(), "\n".join(lines))


def register(sub) -> None:
    parser = command(sub, "add-character", _add_character,
                     "make a character from photos of one person or pet (TALEWEAVER_MIN_PHOTOS "
                     "to TALEWEAVER_MAX_PHOTOS: 3 to 20 unless set; about 8 is best); prints a "
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
    parser = command(sub, "add-photos", _add_photos,
                     "add photos to a character (TALEWEAVER_MAX_PHOTOS in all, 20 unless set); "
                     "prints a verdict on each photo and whether its adapter is out of date")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--keep-originals", action="store_true",
                        help="also keep the uploaded files (by default only the crops are kept)")
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO",
                        help="photo files: JPEG, PNG, HEIC, WebP, GIF, BMP or TIFF")
    parser = command(sub, "change-character", _change_character,
                     "change who a character is (--kind) or its look (--description)")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--kind", default=None, help="who it is now, e.g. 'little girl'")
    parser.add_argument("--description", default=None,
                        help="its look, e.g. 'short brown hair' ('' for none)")
    command(sub, "characters", _characters, "list your characters")
    parser = command(sub, "delete-character", _delete_character,
                     "delete a character: its photos, crops, checkpoints and local adapter")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--hub", action="store_true",
                        help="also delete its private Hub repo (with the token in HF_TOKEN)")
