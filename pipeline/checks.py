"""Checks on the values a caller sends, whatever the door (app, API, CLI): the right type, finite,
within a documented range, and an error that names the field when not.

JSON and gradio hand over numbers as int or float, so a whole number may arrive as 4.0; it is
accepted as 4, while 4.5, NaN, infinities, booleans, text and null are refused.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

SHOWN_CHARS = 40  # how much of a refused value a message repeats


class ArgumentError(ValueError):
    """A value of the wrong type or out of range; the message names the field and the range."""


def shown(value: Any) -> str:
    """A refused value as a message repeats it: its repr, cut short (a caller may send a lot)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def whole(field: str, value: Any, low: int, high: int) -> int:
    """`value` as an int from `low` to `high`; 4.0 counts as 4."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArgumentError(f"{field}: expected a whole number from {low} to {high}, "
                            f"got {shown(value)}")
    return value


def number(field: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """`value` as a finite float from `low` (excluded with `low_open`) to `high`."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (low < value if low_open else low <= value)
          and value <= high)
    if not ok:
        bound = "above" if low_open else "from"
        raise ArgumentError(f"{field}: expected a number {bound} {low:g} to {high:g}, "
                            f"got {shown(value)}")
    return float(value)


def text(field: str, value: Any, max_length: Optional[int] = None) -> str:
    """`value` as text (a str), at most `max_length` characters."""
    if not isinstance(value, str):
        raise ArgumentError(f"{field}: expected text, got {shown(value)}")
    if max_length is not None and len(value) > max_length:
        raise ArgumentError(f"{field}: {len(value)} characters long; the limit is {max_length}")
    return value


def texts(field: str, value: Any, max_items: int) -> list[str]:
    """`value` as a list of at most `max_items` texts."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ArgumentError(f"{field}: expected a list of texts, got {shown(value)}")
    if len(value) > max_items:
        raise ArgumentError(f"{field}: {len(value)} items; the limit is {max_items}")
    return list(value)


def flag(field: str, value: Any) -> bool:
    """`value` as a bool (true or false, not 1 or "yes")."""
    if not isinstance(value, bool):
        raise ArgumentError(f"{field}: expected true or false, got {shown(value)}")
    return value


def choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    """`value`, one of `allowed`."""
    if not isinstance(value, str) or value not in allowed:
        raise ArgumentError(f"{field}: expected one of {', '.join(allowed)}, got {shown(value)}")
    return value
