"""Likeness: how well the people drawn look like their photos, per picture, per page and across
a book; scoring any pictures as pages with given characters; scoring a book's pictures again."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..book import Book
from ..characters import CharacterStore
from ..illustrate import rescore_book
from ..intake.photos import open_photo
from ..likeness import PageScore, book_consistency, character_identity, score_page
from ..progress import ProgressFn
from ..settings import Settings


def score_images(settings: Settings, user: str, names: Sequence[str],
                 images: Sequence[Path]) -> list[dict]:
    """Score pictures as pages with these characters on them (in this order): one record per
    picture, {"image": its file name, "characters": [{name, found, likeness, looks_like,
    copied, scored, distance, box}]}. An unreadable picture is an error naming its file."""
    store = CharacterStore(settings, user)
    characters = [store.get(name) for name in names if name.strip()]
    if not characters:
        raise ValueError("name at least one of your characters, e.g. --characters Mia,Grandma")
    cast = [(c.name, character_identity(store, c)) for c in characters]
    results = []
    for path in images:
        image, _ = open_photo(Path(path), settings.max_upload_bytes)
        score = score_page(image, cast)
        results.append({"image": Path(path).name,
                        "characters": [c.to_json() for c in score.characters],
                        "describe": score.describe()})
    return results


def picture_score(record: Optional[dict]) -> Optional[PageScore]:
    """A stored score (an Illustration's), or None before scoring."""
    return PageScore.from_json(record) if record else None


def page_lines(record: Optional[dict]) -> list[str]:
    """A picture's score in words a parent understands, one line per character."""
    score = picture_score(record)
    return [] if score is None else [c.describe() for c in score.characters]


def book_summary(book: Book) -> dict:
    """The likeness of a book's chosen pictures: each scored character's consistency across
    the pages (0-100: how alike its faces are), the weakest page, and how many were scored."""
    scores = [picture_score(page.chosen.score) for page in book.pages
              if page.chosen is not None and page.chosen.score]
    weakest = [s.weakest for s in scores if s.weakest is not None]
    return {"consistency": book_consistency(scores), "weakest": min(weakest, default=None),
            "scored_pages": len(scores)}


def summary_line(summary: dict) -> str:
    """A book's likeness in one line: "Mia looks alike on 92/100 of her pages ..."."""
    parts = [f"{name}: {value}/100 alike from page to page" if value is not None
             else f"{name}: found on fewer than two pages"
             for name, value in summary["consistency"].items()]
    if summary["weakest"] is not None:
        parts.append(f"weakest page {summary['weakest']}/100")
    return "; ".join(parts)


def public_score(record: Optional[dict]) -> Optional[dict]:
    """A stored score as callers see it: no face descriptors (they stay on the server)."""
    score = picture_score(record)
    return None if score is None else {**score.to_json(), "describe": score.describe()}


def rescore(settings: Settings, user: str, book_id: str, *,
            on_progress: Optional[ProgressFn] = None) -> Book:
    """Score every picture of a book again (after a character's photos changed, or for a book
    drawn before scoring); on each page the best becomes its picture unless a parent chose
    one."""
    return rescore_book(settings, user, book_id or "", on_progress=on_progress)
