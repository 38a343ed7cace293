"""Art styles (assets/styles.json) and how a page's full prompt is put together.

A style wraps the scene: prompt = the style's prefix, the scene, the style's suffix; negative =
a child-safe negative shared by every style plus the style's own. Users edit only the scene,
and it is only ever the middle of the prompt, so no page text can drop the style or the
negative prompt. Plain data, no torch: the UI lists styles before any model is loaded.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields
from pathlib import Path

STYLES_FILE = Path(__file__).resolve().parent.parent / "assets" / "styles.json"
DEFAULT_STYLE = "watercolor"
# The resolutions SDXL was trained at (about one megapixel); other sizes draw worse pictures.
SDXL_SIZES = frozenset({(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216),
                        (1344, 768), (768, 1344), (1536, 640), (640, 1536)})
_FILE_KEYS = {"child_safe_negative", "styles"}


class StyleError(ValueError):
    """An unknown style, or a styles file with a bad entry; the message names it."""


@dataclass(frozen=True)
class Style:
    """A named art style: the words around every scene, and how SDXL draws it."""

    name: str
    label: str  # what people see, e.g. "Watercolor storybook"
    prefix: str
    suffix: str
    negative: str  # the full negative prompt: child-safe words, then the style's own
    guidance: float
    steps: int
    width: int
    height: int

    def __post_init__(self) -> None:
        where = f"style {self.name!r}"
        for name in ("label", "prefix", "suffix", "negative"):
            if not isinstance(getattr(self, name), str):
                raise StyleError(f"{where}: {name} must be text")
        if not self.label.strip():
            raise StyleError(f"{where}: label is empty")
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) \
                or not 1 <= self.guidance <= 20:
            raise StyleError(f"{where}: guidance must be a number from 1 to 20, "
                             f"not {self.guidance!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) \
                or not 1 <= self.steps <= 150:
            raise StyleError(f"{where}: steps must be a whole number from 1 to 150, "
                             f"not {self.steps!r}")
        whole = all(type(side) is int for side in (self.width, self.height))  # not 1024.0
        if not whole or (self.width, self.height) not in SDXL_SIZES:
            sizes = ", ".join(f"{w}x{h}" for w, h in sorted(SDXL_SIZES))
            raise StyleError(f"{where}: {self.width}x{self.height} is not an SDXL size; "
                             f"use one of {sizes}")

    def prompt(self, scene: str) -> str:
        """The full prompt for a scene: prefix, scene, suffix (the scene is only the middle)."""
        scene = " ".join(scene.split()).rstrip(" .,;")
        return ", ".join(part for part in (self.prefix, scene, self.suffix) if part)


def load_styles(path: Path = STYLES_FILE) -> dict[str, Style]:
    """Every style in the styles file, by name; a malformed file is a StyleError naming the entry."""
    return dict(_load(Path(path)))


def get_style(name: str, path: Path = STYLES_FILE) -> Style:
    """One style by name; an unknown name is a StyleError listing the known ones."""
    styles = load_styles(path)
    if name not in styles:
        raise StyleError(f"unknown style {name!r}; choose one of: {', '.join(styles)}")
    return styles[name]


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> tuple[tuple[str, Style], ...]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StyleError(f"{path} can't be read: {err}") from None
    if not isinstance(record, dict) or set(record) != _FILE_KEYS:
        raise StyleError(f"{path}: expected exactly the keys {sorted(_FILE_KEYS)}")
    safe, styles = record["child_safe_negative"], record["styles"]
    if not isinstance(safe, str) or not safe.strip():
        raise StyleError(f"{path}: child_safe_negative must be non-empty text")
    if not isinstance(styles, dict) or not styles:
        raise StyleError(f"{path}: styles must map names to styles")
    keys = {f.name for f in fields(Style)} - {"name"}
    loaded = []
    for name, entry in styles.items():
        if not isinstance(entry, dict):
            raise StyleError(f"{path}: style {name!r} must be an object")
        problems = [f"unknown keys {sorted(set(entry) - keys)}"] if set(entry) - keys else []
        problems += [f"missing keys {sorted(keys - set(entry))}"] if keys - set(entry) else []
        if problems:
            raise StyleError(f"{path}: style {name!r} has {' and '.join(problems)}")
        own = entry["negative"]
        if isinstance(own, str) and own.strip():
            own = f"{safe.strip()}, {own.strip()}"
        elif isinstance(own, str):
            own = safe.strip()
        loaded.append((name, Style(name=name, **{**entry, "negative": own})))
    return tuple(loaded)
