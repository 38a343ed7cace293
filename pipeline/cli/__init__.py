"""`python -m pipeline ...`: the command-line front door onto the same functions the app uses.

Every subcommand returns a `Result`: plain data for `--json` and text for people, and whether
it did what was asked (a `push` that was skipped prints its result and exits with 1). Every
error prints one line (never a traceback) and exits with 1; a full disk says so; wrong
arguments exit with 2, as argparse does; Ctrl-C stops long work at its next step or page,
keeping what is done, and exits with 130. Library warnings meant for developers stay off the
terminal unless `--verbose`. The commands live in one module per area.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import sys
from typing import Sequence

from ..progress import Cancelled
from ..settings import Settings
from . import books, characters, hub, story, train
from .core import common_options, is_main_process, quiet_libraries


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
        if args.data_dir is not None:
            settings = dataclasses.replace(settings, data_dir=args.data_dir)
        if args.user is None:
            args.user = settings.local_user
        with quiet_libraries(args.verbose):  # first: libraries read it when imported
            if whole_process:
                from ..actions.system import use_cpu_threads

                use_cpu_threads(settings)
            result = args.handler(args, settings)
    except (Cancelled, KeyboardInterrupt) as err:
        print(f"stopped{f': {err}' if str(err) else ''}; what was done is kept",
              file=sys.stderr)
        return 130
    except OSError as err:
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        print("error: the disk is full: nothing was saved" if full else f"error: {err}",
              file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        message = str(err) if isinstance(err, (ValueError, RuntimeError)) else \
            f"{type(err).__name__}: {err}"
        print(f"error: {message}", file=sys.stderr)
        return 1
    if not is_main_process():
        return 0
    if args.json:
        print(json.dumps(result.data, indent=2, ensure_ascii=False, default=str))
    else:
        print(result.text, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1
