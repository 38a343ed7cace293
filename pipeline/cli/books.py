"""CLI commands for books: books, export, delete-book."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..progress import counted
from ..settings import Settings
from .core import Result, command


def _books(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import list_books

    rows = list_books(settings, args.user)
    from ..actions.likeness import summary_line

    lines = [f"{row.id}  {row.title}  ({row.illustrated}/{row.pages} pages illustrated, "
             f"made {row.created[:10]})"
             + (f"\n    likeness: {summary_line(row.likeness)}" if row.likeness["scored_pages"]
                else "") for row in rows]
    return Result([row.to_json() for row in rows], "\n".join(lines) or "No books yet.")


def _export(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import export

    done = export(settings, args.user, args.book_id, args.out, draft=args.draft)
    lines = [f"Saved {done.path} ({counted(done.pages, 'page')})."]
    if done.text_only:
        lines.append(f"Draft: no picture yet on page{'s' if len(done.text_only) > 1 else ''} "
                     + ", ".join(map(str, done.text_only)))
    if done.dropped:
        lines.append("Left out characters the book font can't print: " + " ".join(done.dropped))
    return Result({**dataclasses.asdict(done), "path": str(done.path)}, "\n".join(lines))


def _delete_book(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import delete_book

    deleted = delete_book(settings, args.user, args.book_id)
    return Result(deleted.to_json(),
                  f"Deleted {deleted.title!r} ({deleted.id}) with all its pictures.")


def register(sub) -> None:
    command(sub, "books", _books, "list your books, newest first")
    parser = command(sub, "export", _export, "save a book as a printable PDF or an HTML file")
    parser.add_argument("book_id", help="the book's id (see `books`)")
    parser.add_argument("--out", type=Path, required=True,
                        help="file to write: FILE.pdf (square 8.5 in pages) or FILE.html")
    parser.add_argument("--draft", action="store_true",
                        help="allow pages without a picture yet, set as text-only pages")
    parser = command(sub, "delete-book", _delete_book, "delete a book and all its pictures")
    parser.add_argument("book_id", help="the book's id (see `books`)")
