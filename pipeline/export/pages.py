"""The pages of a finished book in order, as the PDF, the HTML book and the gallery show them:
the cover, the dedication, the story pages, the closing line and the back cover; and how they
face each other when the printed book lies open (spreads).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..book import Book

KINDS = ("cover", "dedication", "story", "closing", "blank", "back")


@dataclass(frozen=True)
class BookSide:
    """One page of the finished book: what kind it is, its words and its picture (a file of
    the book, or ""). A story page has its number; the covers have the title in `title`."""

    kind: str
    text: str = ""
    picture: str = ""
    number: int = 0  # the story page's number, from 1
    title: str = ""

    @property
    def label(self) -> str:
        """"Cover", "Dedication", "Page 3", ... for people."""
        if self.kind == "story":
            return f"Page {self.number}"
        return {"cover": "Cover", "dedication": "Dedication", "closing": "Closing words",
                "blank": "Blank page", "back": "Back cover"}[self.kind]

    @property
    def spoken(self) -> str:
        """What reading the book aloud says on this page ("" for none: a blank page)."""
        if self.kind == "cover":
            return ". ".join(part for part in (self.title, self.text) if part)
        return "" if self.kind in ("blank", "back") else self.text


def story_about(characters: Sequence[str]) -> str:
    """The cover's line: "A story about Mia", "... about Mia and Grandma", "... Mia, Leo and Rex"."""
    names = named(characters)
    return f"A story about {names}" if names else ""


def named(names: Sequence[str]) -> str:
    """Names as a sentence says them: "Mia", "Mia and Rex", "Mia, Leo and Rex" ("" for none)."""
    names = [n for n in names if n.strip()]
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


def book_sides(book: Book, *, printed: bool = False) -> list[BookSide]:
    """Every page of the book in order. `printed`: a blank page goes before the back cover
    where needed so that the page count is even and the back cover is the last leaf's back."""
    about = story_about(book.characters)
    sides = [BookSide("cover", about, book.cover_image, title=book.title)]
    if book.dedication:
        sides.append(BookSide("dedication", book.dedication))
    sides += [BookSide("story", page.text, page.image, number)
              for number, page in enumerate(book.pages, start=1)]
    if book.closing:
        sides.append(BookSide("closing", book.closing))
    if printed and len(sides) % 2 == 0:  # with the back cover it would be odd
        sides.append(BookSide("blank"))
    sides.append(BookSide("back", about, title=book.title))
    return sides


def spreads(sides: Sequence[BookSide]) -> list[tuple[Optional[BookSide], Optional[BookSide]]]:
    """(left, right) pages as the book opens: the cover alone on the right, then facing pairs,
    and the last page alone on the left when the count is even."""
    pairs: list[tuple[Optional[BookSide], Optional[BookSide]]] = [(None, sides[0])] \
        if sides else []
    rest = list(sides[1:])
    for start in range(0, len(rest), 2):
        pair = rest[start:start + 2]
        pairs.append((pair[0], pair[1] if len(pair) > 1 else None))
    return pairs
