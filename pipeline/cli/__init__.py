"""`python -m pipeline ...`: the command-line front door onto the same functions the app uses.

Every subcommand returns a `Result`: plain data for `--json` and text for people. Errors from
the engine (ValueError, RuntimeError, OSError) print one clear line and exit with 1; wrong
arguments exit with 2, as argparse does. The commands live in one module per area.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from ..settings import Settings
from . import books, characters, hub, story, train
from .core import common_options, is_main_process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Taleweaver: personalised, illustrated storybooks from family photos.",
        parents=[common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (characters, train, hub, story, books):
        area.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, whole_process: bool = False) -> int:
    """Run one command; `whole_process` (python -m pipeline) also chooses torch's CPU threads."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if whole_process:
            from ..actions.system import use_cpu_threads

            use_cpu_threads(settings)
        if args.data_dir is not None:
            settings = dataclasses.replace(settings, data_dir=args.data_dir)
        if args.user is None:
            args.user = settings.local_user
        result = args.handler(args, settings)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not is_main_process():
        return 0
    if args.json:
        print(json.dumps(result.data, indent=2, ensure_ascii=False, default=str))
    else:
        print(result.text)
    return 0
