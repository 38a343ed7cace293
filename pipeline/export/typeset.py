"""Setting text in the book font (Andika, assets/fonts, SIL Open Font License) with fpdf2:
which characters it can print, how many lines a passage takes, centred or justified lines."""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "fonts"
FONT_REGULAR, FONT_BOLD = FONT_DIR / "Andika-Regular.ttf", FONT_DIR / "Andika-Bold.ttf"
LEADING = 1.45  # line height / font size
TEXT_SIZES = (18, 17, 16, 15, 14, 13, 12, 11, 10)  # tried from large to small until it fits
TITLE_SIZES = (36, 32, 28, 24, 21, 18)
CENTRED_LINES = 4  # longer passages are justified
INK, SOFT_INK = (38, 38, 46), (110, 110, 120)
# Joiners, variation selectors, skin tones: dropped with the emoji they belong to, not listed.
_INVISIBLE = {"Cf", "Mn", "Me", "Sk"}


def add_fonts(pdf) -> None:
    """Make the book font (regular and bold) available to the document as "Andika"."""
    pdf.add_font("Andika", "", FONT_REGULAR)
    pdf.add_font("Andika", "B", FONT_BOLD)


@lru_cache(maxsize=None)
def _font_codepoints(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def fit_to_font(text: str) -> tuple[str, set[str]]:
    """The text with only characters both book fonts have (line breaks kept), and the rest."""
    covered = _font_codepoints(FONT_REGULAR) & _font_codepoints(FONT_BOLD)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines, lost = [], set()
    for line in text.split("\n"):
        kept, dropping = [], False  # dropping: inside an unprintable character's sequence
        for ch in line:
            invisible = unicodedata.category(ch) in _INVISIBLE
            if ch.isspace():
                kept.append(" ")
                dropping = False
            elif dropping and invisible:
                continue
            elif ord(ch) in covered:
                kept.append(ch)
                dropping = False
            else:
                dropping = True
                if not invisible:
                    lost.add(ch)
        lines.append(" ".join("".join(kept).split()))
    return "\n".join(lines).strip("\n"), lost


def line_count(pdf, text: str, size: float, width: float, bold: bool = False) -> int:
    pdf.set_font("Andika", "B" if bold else "", size)
    return len(pdf.multi_cell(width, size * LEADING, text, dry_run=True, output="LINES"))


def height(pdf, text: str, size: float, width: float, bold: bool = False) -> float:
    """The height of the passage set at this size in a column this wide, in points."""
    return line_count(pdf, text, size, width, bold) * size * LEADING


def fitting_size(pdf, text: str, width: float, room: float,
                 sizes: tuple[float, ...] = TEXT_SIZES) -> float | None:
    """The first of `sizes` (largest first) at which the passage fits `room` points of height,
    or None."""
    return next((size for size in sizes if height(pdf, text, size, width) <= room), None)


def draw(pdf, text: str, top: float, size: float, width: float, centre: float,
         bold: bool = False, color: tuple[int, int, int] = INK) -> None:
    """Centred lines; a long passage of body text (past CENTRED_LINES) is justified."""
    long = line_count(pdf, text, size, width, bold) > CENTRED_LINES and not bold
    pdf.set_text_color(*color)
    pdf.set_xy(centre - width / 2, top)
    pdf.multi_cell(width, size * LEADING, text, align="J" if long else "C")


def title_size(pdf, title: str, width: float) -> float:
    """The largest title size that sets the title in at most three lines."""
    return next((s for s in TITLE_SIZES if line_count(pdf, title, s, width, bold=True) <= 3),
                TITLE_SIZES[-1])
