"""What drawing one page asks the renderer for: its prompt, its passes and where each of its
characters stands.

Without the second pass (or without characters) a page is one pass with its characters'
adapters over the whole picture. With it, a page with several characters is first drawn with
each as its kind and look, left to right in the page's order and with no adapter, then each
head is redrawn with only that character's adapter (compose.py); a page with one character
keeps its adapter on the first pass too.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from .adapters import AdapterRef
from .book import BookPage, Region
from .characters import Character
from .compose import Box, CharacterPass, PassOptions, layout_words, plan_layout
from .intake.photos import is_person
from .render import RenderJob
from .story import scene_prompt
from .styles import Style


def page_job(page: BookPage, cast: Mapping[str, Character], refs: Mapping[str, AdapterRef],
             style: Style, seeds: tuple[int, ...], *, width: int, height: int, steps: int,
             second_pass: PassOptions | None) -> tuple[RenderJob, list[Region]]:
    """The page's render job and where each character stands: with the second pass when one
    is given and the page has characters, a single pass otherwise. `cast` is the user's
    characters by name, `refs` the adapters of the page's characters."""
    everyone = list(cast.values())
    plain = RenderJob(prompt=style.prompt(scene_prompt(page.scene, everyone)),
                      negative=style.negative, seeds=seeds, width=width, height=height,
                      steps=steps, guidance=style.guidance,
                      adapters=tuple(refs[name] for name in page.characters))
    if second_pass is None or not page.characters:
        return plain, []
    order = page_order(page)
    layout = _layout(page, order, (width, height))
    passes = tuple(CharacterPass(name, style.prompt(_portrait(cast[name])), refs[name], box,
                                 is_person(cast[name].kind))
                   for name, box in layout)
    if len(order) > 1:  # the scene with everyone as their kind, no adapter
        kinds = [cast[name].kind for name in order]
        scene = scene_prompt(page.scene, everyone, triggers=False).rstrip(" .,;!?")
        plain = dataclasses.replace(plain, prompt=style.prompt(f"{scene}, {layout_words(kinds)}"),
                                    adapters=())
    job = dataclasses.replace(plain, passes=passes, pass_options=second_pass)
    return job, [Region(name, box) for name, box in layout]


def page_order(page: BookPage) -> tuple[str, ...]:
    """A page's characters from left to right: the parent's order, else the story's."""
    return page.order if sorted(page.order) == sorted(page.characters) else page.characters


def _layout(page: BookPage, order: Sequence[str],
            size: tuple[int, int]) -> list[tuple[str, Box]]:
    """Where each character stands: the layout the page was last drawn with when it is for the
    same characters in the same order and fits the picture, else a new one."""
    kept = [(r.name, r.box) for r in page.layout]
    fits = all(box[2] <= size[0] and box[3] <= size[1] for _, box in kept)
    if [name for name, _ in kept] == list(order) and fits:
        return kept
    return plan_layout(order, size)


def _portrait(character: Character) -> str:
    """What a character's second pass draws: its trigger words, look and head."""
    look = f" ({character.description})" if character.description else ""
    return f"portrait of {character.token_phrase}{look}"
