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


def _push(args: argparse.Namespace, settings: Settings) -> Result:
    from ..characters import CharacterStore
    from ..hub.repos import push_adapter
    from ..hub.tokens import token_from_env

    character = CharacterStore(settings, args.user).get(args.name)
    result = push_adapter(settings, args.user, character, token_from_env(),
                          include_validation_image=args.with_validation_image)
    text = " ".join(filter(None, [result.message, next_step(
        result.reason, f"push {shlex.quote(character.name)}")]))
    if result.status == "failed":
        raise RuntimeError(text)
    return Result(result.to_json(), text)


def _pull(args: argparse.Namespace, settings: Settings) -> Result:
    from ..characters import CharacterStore
    from ..hub.repos import ensure_local_adapter, install_adapter
    from ..hub.tokens import token_from_env

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
