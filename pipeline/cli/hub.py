"""CLI commands for the Hub: push, pull."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..settings import Settings
from .core import Result, command

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


def next_step(reason: str, again: str) -> str:
    """What to run after a Hub action that did not happen (`reason` of a HubResult); `again`
    is the command that does it, e.g. "push Mia". "" when there is nothing to do."""
    run = f"python -m pipeline {again}"
    with_token = f"HF_TOKEN=hf_... {run}"
    advice = {
        "": "",
        "no_token": f"To do it, run: {with_token} (a write token from {TOKENS_PAGE}).",
        "offline": f"When online, unset HF_HUB_OFFLINE and run: {run}",
        "unauthorized": f"Make a new token at {TOKENS_PAGE} and run: {with_token}",
        "forbidden": f"With a token that may write to your repos, run: {with_token}",
        "public_repo": f"Then run: {run}",
    }
    return advice.get(reason, f"Try again later: {run}")


def hub_text(result, again: str) -> str:
    """A push's line for people: what happened, then what to run if it did not."""
    return " ".join(filter(None, [result.message, next_step(result.reason, again)]))


def _push(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.characters import get_character
    from ..actions.system import own_token
    from ..actions.training import push

    name = get_character(settings, args.user, args.name).name
    result = push(settings, args.user, name, own_token(),
                  with_validation_image=args.with_validation_image)
    return Result(result.to_json(), hub_text(result, f"push {shlex.quote(name)}"),
                  ok=result.status == "pushed")


def _pull(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import pull

    pulled = pull(settings, args.user, args.name, own_token(), args.source)
    how = {"folder": f"copied from {args.source}", "local": "already on this machine",
           "hub": "downloaded from its private Hub repo"}[pulled.source]
    return Result(pulled.to_json(), f"{pulled.character}'s adapter is {how}: {pulled.path}")


def register(sub) -> None:
    parser = command(sub, "push", _push, "upload a character's adapter to a private repo in "
                     "your Hugging Face namespace, with the token in HF_TOKEN")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--with-validation-image", action="store_true",
                        help="also upload validation.png (it shows the person; off by default)")
    parser = command(sub, "pull", _pull, "make sure a character's adapter is on this machine: "
                     "download it from its private repo (HF_TOKEN) or copy it from a folder")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="a folder shaped like the adapter repo (e.g. a git clone of it)")
