"""pipeline/checks.py: the field checks every door's values go through."""
import math

import pytest

from pipeline.checks import ArgumentError, choice, flag, number, shown, text, texts, whole


def test_whole_numbers():
    assert whole("steps", 4, 1, 10) == 4 and whole("steps", 4.0, 1, 10) == 4
    for bad in (0, 11, 4.5, math.nan, math.inf, "4", True, None, [4]):
        with pytest.raises(ArgumentError, match="steps: expected a whole number from 1 to 10"):
            whole("steps", bad, 1, 10)


def test_numbers():
    assert number("weight", 1, 0, 2, low_open=True) == 1.0
    for bad in (0, 2.5, math.nan, -math.inf, "1", False, None):
        with pytest.raises(ArgumentError, match="weight: expected a number above 0 to 2"):
            number("weight", bad, 0, 2, low_open=True)


def test_text_flags_choices_and_lists():
    assert text("title", "Mia") == "Mia"
    with pytest.raises(ArgumentError, match="title: expected text, got 12"):
        text("title", 12)
    with pytest.raises(ArgumentError, match="title: 5 characters long; the limit is 4"):
        text("title", "Mia's", 4)
    assert flag("draft", True) is True
    with pytest.raises(ArgumentError, match="draft: expected true or false, got 'yes'"):
        flag("draft", "yes")
    assert choice("format", "pdf", ("pdf", "html")) == "pdf"
    with pytest.raises(ArgumentError, match="format: expected one of pdf, html"):
        choice("format", "exe", ("pdf", "html"))
    assert texts("characters", ("Mia",), 2) == ["Mia"]
    for bad in ("Mia", [1], None):
        with pytest.raises(ArgumentError, match="characters: expected a list of texts"):
            texts("characters", bad, 2)
    with pytest.raises(ArgumentError, match="3 items; the limit is 2"):
        texts("characters", ["a", "b", "c"], 2)


def test_a_refused_value_is_repeated_short():
    assert shown("x" * 1000) == repr("x" * 1000)[:37] + "..."
    assert shown(12) == "12"
