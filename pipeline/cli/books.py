"""CLI commands for books: books, edit-book, export, delete-book."""
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


def _edit_book(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import (book_json, delete_page, edit_text, edit_words, get_book,
                                 insert_page, move_page)

    pages = [flag for flag, value in (("--page", args.page), ("--insert-after", args.insert_after),
                                      ("--delete-page", args.delete_page), ("--move", args.move))
             if value is not None]
    words = {"dedication": args.dedication, "closing": args.closing, "language": args.language}
    if len(pages) > 1:
        raise ValueError(f"one page change at a time: {' and '.join(pages)} were given")
    if not pages and all(value is None for value in words.values()):
        raise ValueError("nothing to change: give --dedication, --closing, --language, "
                         "--page N --text TEXT, --insert-after N --text TEXT, --delete-page N "
                         "or --move N --to M")
    if (args.text is not None) != (args.page is not None or args.insert_after is not None):
        raise ValueError("--text goes with --page N or --insert-after N, and they need it")
    if (args.to is not None) != (args.move is not None):
        raise ValueError("--move N needs --to M, and --to goes with --move")
    messages = []
    if any(value is not None for value in words.values()):
        messages.append(edit_words(settings, args.user, args.book_id, **words).message)
    if args.page is not None:
        messages.append(edit_text(settings, args.user, args.book_id, args.page,
                                  args.text).message)
    elif args.insert_after is not None:
        messages.append(insert_page(settings, args.user, args.book_id, args.insert_after,
                                    args.text).message)
    elif args.delete_page is not None:
        messages.append(delete_page(settings, args.user, args.book_id,
                                    args.delete_page).message)
    elif args.move is not None:
        messages.append(move_page(settings, args.user, args.book_id, args.move,
                                  args.to).message)
    book = get_book(settings, args.user, args.book_id)
    text = " ".join(m for m in messages if m) or "Nothing changed."
    return Result({"book": book_json(settings, args.user, book), "message": text},
                  f"{text}\n{book.title!r} ({book.id}): {counted(len(book.pages), 'page')}.")


def _export(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.books import export

    done = export(settings, args.user, args.book_id, args.out, draft=args.draft, trim=args.trim,
                  bleed=args.bleed)
    lines = [f"Saved {done.path} ({counted(done.pages, 'page')}; pictures: {done.pictures})."]
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
    parser = command(sub, "edit-book", _edit_book,
                     "change a book once made: a page's words, insert, delete or move a page, "
                     "the dedication, the closing line, the language")
    parser.add_argument("book_id", help="the book's id (see `books`)")
    parser.add_argument("--dedication", help='on its own page after the cover ("" removes it)')
    parser.add_argument("--closing", help='a closing line, on its own page at the end ("" '
                                          "removes it)")
    parser.add_argument("--language", help="the book's language for reading aloud: en, fr, "
                                           'de-CH... ("" for none)')
    parser.add_argument("--page", type=int, metavar="N", help="change page N's words (--text)")
    parser.add_argument("--insert-after", type=int, metavar="N",
                        help="insert a page with --text after page N (0: before the first)")
    parser.add_argument("--text", help="the page's words")
    parser.add_argument("--delete-page", type=int, metavar="N",
                        help="delete page N and its pictures")
    parser.add_argument("--move", type=int, metavar="N", help="move page N (with --to M)")
    parser.add_argument("--to", type=int, metavar="M", help="where --move puts the page")
    parser = command(sub, "export", _export, "save a book as a PDF (to print or for a screen) "
                                             "or an HTML file")
    parser.add_argument("book_id", help="the book's id (see `books`)")
    parser.add_argument("--out", type=Path, required=True, help="file to write: FILE.pdf or "
                                                                "FILE.html")
    parser.add_argument("--trim", default="screen",
                        help="PDF page size: 8.5x8.5 (square), 8x10 (portrait) or a4-landscape, "
                             "with pictures at 300 dpi for print; screen (default): square "
                             "8.5 in pages with the pictures as drawn")
    parser.add_argument("--bleed", action="store_true",
                        help="add the 0.125 in bleed print services ask for (print trims)")
    parser.add_argument("--draft", action="store_true",
                        help="allow pages without a picture yet, set as text-only pages")
    parser = command(sub, "delete-book", _delete_book, "delete a book and all its pictures")
    parser.add_argument("book_id", help="the book's id (see `books`)")
