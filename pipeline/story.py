"""Story text to pages: the text, the characters on each page, and its scene in the parent's words.

The story format is plain text. Pages are separated by a blank line (or a line holding only
`---`). A page may have one line `Scene: ...` that describes its picture; without one the
scene is the page text itself. Characters are found by name. A page keeps its scene as the
parent wrote it ("Mia and Rex on a windy beach"); `scene_prompt` turns it into the words the
adapters were trained on ("<trigger> <kind>" and the look) when the page is drawn:

    Mia and Rex ran to the lighthouse.
    Scene: Mia and Rex on a windy beach at sunset

    ---
    Rex found a shell.

Does not import torch: the UI parses and shows pages before any model is loaded.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Sequence

from .characters import Character
from .settings import Settings

SCENE_LABEL = "scene:"
_SEPARATOR = re.compile(r"\s*|\s*-{3,}\s*")
_APOSTROPHES = "'’"
_SPLIT_PAGE = "split it into two pages with a blank line"
# Scripts written without spaces between words (Chinese, Japanese, Thai, ...) or with endings
# joined to names (Korean "민수가"): a name there may touch the next letter.
_UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f"
             "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
             "\U00020000-\U0003134f")
_SPACED_LETTER = rf"[^\W{_UNSPACED}]"  # a letter or digit that words are separated around


class StoryError(ValueError):
    """The story can't be turned into pages; the message names the page and the limit."""


@dataclass(frozen=True)
class Page:
    """One page of a story: its text, its scene in the parent's words, who is on it."""

    text: str
    scene: str
    characters: tuple[str, ...] = ()  # character names, as stored in their records


def parse_story(story: str, characters: Sequence[Character], settings: Settings) -> list[Page]:
    """Split a story into pages, find who is on each page and keep its scene.

    Raises StoryError for an empty story, or one past TALEWEAVER_MAX_PAGES pages or
    TALEWEAVER_MAX_PAGE_CHARS characters on a page: nothing is ever cut silently.
    """
    blocks = split_pages(story)
    if not blocks:
        raise StoryError("the story is empty: write at least one page of text")
    if len(blocks) > settings.max_pages:
        raise StoryError(f"the story has {len(blocks)} pages; the limit is {settings.max_pages} "
                         "pages per book (TALEWEAVER_MAX_PAGES)")
    pages = []
    for number, block in enumerate(blocks, start=1):
        text, scenes = _scene_lines(block)
        _check_length(f"page {number}", text, settings, _SPLIT_PAGE)
        if not text:
            raise StoryError(f"page {number} has a scene line but no story text")
        if len(scenes) > 1:
            raise StoryError(f"page {number} has {len(scenes)} Scene lines; keep one, the "
                             "description of its picture")
        page = Page(text=text, scene="", characters=())
        pages.append(set_scene(page, scenes[0] if scenes else text, characters, settings,
                               label=f"page {number}'s scene"))
    return pages


def split_pages(story: str) -> list[str]:
    """The story's pages as text blocks: split at blank lines and at lines holding only ---."""
    pages, lines = [], []
    for line in clean_text(story).split("\n"):
        if _SEPARATOR.fullmatch(line):
            if lines:
                pages.append("\n".join(lines).strip())
            lines = []
        else:
            lines.append(line.rstrip())
    if lines:
        pages.append("\n".join(lines).strip())
    return pages


def set_scene(page: Page, scene: str, characters: Sequence[Character], settings: Settings,
              label: str = "scene") -> Page:
    """The page with a new scene, kept as written (one line), and who it shows.

    The characters on a page are the ones its scene names: a scene the user edits to show
    only the dog makes only the dog's adapter active.
    """
    scene = " ".join(clean_text(scene).split())
    _check_length(label, scene, settings, "shorten it to what the picture shows")
    return replace(page, scene=scene, characters=find_characters(scene, characters))


def find_characters(text: str, characters: Sequence[Character]) -> tuple[str, ...]:
    """Names of the characters that `text` mentions (by name or trigger), in order of appearance.

    Whole words only, possessives included ("Mia's", "James'"), unicode names ("Zoë",
    "D'Arcy") included; "Ann" does not match inside "Anna". A name's capital stays a capital
    ("Cookie" the dog, "a cookie" the biscuit); the rest of it may be in any case ("MIA").
    """
    pattern, by_group = _names_pattern(characters, with_triggers=True)
    found = {by_group[match.lastgroup].name: None for match in pattern.finditer(_nfc(text))}
    return tuple(found)


def scene_prompt(text: str, characters: Sequence[Character], *, triggers: bool = True) -> str:
    """`text` with each character's name replaced by "<trigger> <kind>" (the adapter's words),
    or by the kind alone with `triggers=False` (a scene drawn before each character's own pass).

    The first mention also carries the character's look description in parentheses.
    """
    described: set[str] = set()
    pattern, by_group = _names_pattern(characters, with_triggers=False)

    def substitute(match: re.Match) -> str:
        character = by_group[match.lastgroup]
        possessive = match.string[match.end(match.lastgroup):match.end()]  # "'s" or ""
        words = (character.token_phrase if triggers else character.kind) + possessive
        if character.description and character.name not in described:
            described.add(character.name)
            words += f" ({character.description})"
        before = match.string[match.start() - 1:match.start()]  # a letter touches it: "小明去"
        after = match.string[match.end():match.end() + 1]
        return (" " if before.isalnum() else "") + words + (" " if after.isalnum() else "")

    return " ".join(pattern.sub(substitute, _nfc(text)).split())


def scene_from_prompt(prompt: str, characters: Sequence[Character]) -> str:
    """Undo `scene_prompt` for the characters given: each "<trigger> <kind>" (with its
    possessive and look) becomes the name again. Books saved before scenes were kept as
    written stored the prompt; this turns them back into the parent's words."""
    for character in characters:
        look = (rf"(?: \({re.escape(character.description)}\))?" if character.description
                else "")
        phrase = re.compile(rf"{re.escape(character.token_phrase)}((?:[{_APOSTROPHES}]s)?){look}")
        prompt = phrase.sub(lambda match: character.name + match.group(1), prompt)
    return prompt


def page_line(text: str) -> str:
    """`text` as one line that the story format reads back as the same page text: no control
    characters or line breaks, no `Scene:` label in front, not a page separator ("" if so)."""
    line = " ".join(clean_text(text).split())
    while line.casefold().startswith(SCENE_LABEL):
        line = line[len(SCENE_LABEL):].strip()
    return "" if _SEPARATOR.fullmatch(line) else line


def clean_text(text: str) -> str:
    """Unicode-normalised text with Unix newlines and no control characters but newlines."""
    text = _nfc(text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")


def _scene_lines(block: str) -> tuple[str, list[str]]:
    """Split a page block into its text and what its `Scene:` lines say (normally one)."""
    text_lines, scenes = [], []
    for line in block.split("\n"):
        if line.strip().casefold().startswith(SCENE_LABEL):
            scenes.append(line.strip()[len(SCENE_LABEL):].strip())
        else:
            text_lines.append(line)
    return "\n".join(text_lines).strip(), scenes


def _check_length(label: str, text: str, settings: Settings, advice: str) -> None:
    if len(text) > settings.max_page_chars:
        raise StoryError(f"{label} has {len(text)} characters; the limit is "
                         f"{settings.max_page_chars} per page (TALEWEAVER_MAX_PAGE_CHARS): "
                         f"{advice}")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _words(character: Character, with_triggers: bool) -> list[str]:
    words = [_nfc(character.name)]
    if with_triggers and character.trigger:
        words.append(character.trigger)
    return words


def _names_pattern(characters: Sequence[Character],
                   with_triggers: bool) -> tuple[re.Pattern, dict[str, Character]]:
    """One regex for every name, longest first, so "Mia Rose" wins over "Mia"; each name is a
    named group, and the dict gives the character of each group (`match.lastgroup`).

    The group, not the matched text, says who it is: a case-insensitive match may differ from
    the name in ways casefold() doesn't undo (Turkish "İ" and "ı" match "i").
    """
    words = sorted(((w, c) for c in characters for w in _words(c, with_triggers)),
                   key=lambda pair: len(pair[0]), reverse=True)
    by_group = {f"name{i}": character for i, (_, character) in enumerate(words)}
    names = "|".join(_name_regex(word, f"name{i}") for i, (word, _) in enumerate(words))
    return re.compile(names or "(?!)", re.IGNORECASE), by_group


def _name_regex(name: str, group: str) -> str:
    """One name: its first letter in its own case, the rest in any, its words apart by any
    spaces, either apostrophe, a whole word (not inside a longer word or name such as "Anna" or
    "D'Arcyville"), then an optional possessive ("Mia's") outside the group. An edge in a
    script without spaces may touch any letter: "小明去了"."""
    quote, joiner, letter = f"[{_APOSTROPHES}]", f"[-{_APOSTROPHES}]", _SPACED_LETTER
    body = r"\s+".join(re.escape(part.replace("’", "'")).replace("'", quote)
                       for part in name.split())
    if name[0].isupper():  # "Rose" is grandma, "a rose" a flower
        body = f"(?-i:{name[0]})" + body[1:]
    lead = "" if _unspaced(name[0]) else rf"(?<!{letter})(?<!{letter}{joiner})"
    tail = "" if _unspaced(name[-1]) else rf"(?:{quote}s)?(?!{letter})(?!{joiner}{letter})"
    return rf"{lead}(?P<{group}>{body}){tail}"


def _unspaced(char: str) -> bool:
    return re.fullmatch(f"[{_UNSPACED}]", char) is not None
