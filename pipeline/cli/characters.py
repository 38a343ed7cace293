"""CLI commands for characters: add-character, characters, delete-character."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..settings import Settings
from .core import Result, command, progress_bar


def _add_character(args: argparse.Namespace, settings: Settings) -> Result:
    import shlex

    from ..actions.characters import NotEnoughPhotos, add_character

    try:
        with progress_bar(f"checking {args.name}'s photos") as show:
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
    from ..actions.characters import list_characters

    rows = list_characters(settings, args.user)
    lines = [f"{r.name} ({r.kind}): {r.photos} photos, trigger {r.trigger!r}, "
             f"{'adapter trained' if r.trained else 'not trained yet'}"
             + (f", on the Hub as {r.hub_repo}" if r.hub_repo else "") for r in rows]
    return Result([r.to_json() for r in rows],
                  "\n".join(lines) or "No characters yet: add one with add-character.")


def _delete_character(args: argparse.Namespace, settings: Settings) -> Result:
    import shlex

    from ..actions.characters import RepoNotDeleted, delete_character
    from ..actions.system import own_token
    from .hub import next_step

    try:
        deleted = delete_character(settings, args.user, args.name, own_token(),
                                   with_repo=args.hub)
    except RepoNotDeleted as err:
        again = f"delete-character {shlex.quote(args.name)} --hub"
        raise RuntimeError(f"{err} {next_step(err.result.reason, again)}") from None
    text = (f"Deleted {deleted.name} with all its photos, crops, checkpoints and adapter on this "
            "machine.")
    return Result(deleted.to_json(), text + (f" {deleted.hub.message}" if deleted.hub else ""))


def register(sub) -> None:
    parser = command(sub, "add-character", _add_character,
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
    command(sub, "characters", _characters, "list your characters")
    parser = command(sub, "delete-character", _delete_character,
                     "delete a character: its photos, crops, checkpoints and local adapter")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--hub", action="store_true",
                        help="also delete its private Hub repo (with the token in HF_TOKEN)")
