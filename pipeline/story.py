"""Story text to pages: the text, the characters on each page, and an editable scene prompt.

Does not import torch: the UI parses and shows pages before any model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One page of a story: its text, the scene prompt the user may edit, who is on it."""

    text: str
    scene: str
    characters: tuple[str, ...] = ()  # character names, as stored in their records
