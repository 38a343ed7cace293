"""A family on one page: where each character stands, and the second pass that redraws each
character's head with only its own adapter, so faces neither blend nor repeat.

The first pass draws the scene with the characters as their kinds and looks ("a girl (curly red
hair) and a grandma"), from left to right in the page's order. The second pass then, for each
character: finds its face on the first pass (people; faces assigned to the layout's columns by
position), else takes the top of its column (pets, objects, or a face not found); crops a square
around the head, redraws it at the adapter's native resolution with only that character's
adapter active and its trigger words, and blends it back through a feathered mask. Pixels
outside every redrawn square are the first pass's, exactly.

diffusers' SDXL inpainting pipeline is built from the loaded pipeline (`from_pipe`: the same
weights, no second copy). Nothing heavy is imported until a page is drawn.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFilter

from .intake import faces
from .adapters import AdapterRef, activate
from .models import encode_long_prompt

Box = tuple[int, int, int, int]
COLUMN_TOP = 0.05  # a character's column spans the picture's height but these margins
COLUMN_BOTTOM = 0.95
HEAD_SHARE = 0.45  # a column's head square when no face is found: this share of its width...
HEAD_TOP = 0.12  # ...this far down the picture
FEATHER = 0.12  # the mask's soft edge, as a share of the square's side
_inpainters: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_inpainters_lock = threading.Lock()


@dataclass(frozen=True)
class CharacterPass:
    """One character's second pass: its full prompt, its adapter, its column, and whether to
    look for its face (people) or use its column (pets, objects)."""

    name: str
    prompt: str
    adapter: AdapterRef
    region: Box
    person: bool


@dataclass(frozen=True)
class PassOptions:
    """How the second pass redraws: its strength, the margin around a head (in face sides on
    each side) and the side it draws at (the adapter's training resolution)."""

    strength: float
    margin: float
    side: int
    steps: int
    guidance: float


def plan_layout(names: Sequence[str], size: tuple[int, int]) -> list[tuple[str, Box]]:
    """One column per character, left to right in the given order."""
    width, height = size
    count = max(1, len(names))
    top, bottom = round(COLUMN_TOP * height), round(COLUMN_BOTTOM * height)
    return [(name, (round(i * width / count), top, round((i + 1) * width / count), bottom))
            for i, name in enumerate(names)]


def layout_words(kinds: Sequence[str]) -> str:
    """The words that ask the first pass for this many people, left to right."""
    if len(kinds) < 2:
        return ""
    return "from left to right: " + ", ".join(kinds)


def place_characters(found: Sequence[Box], passes: Sequence[CharacterPass],
                     size: tuple[int, int], margin: float) -> list[Box]:
    """The square to redraw for each pass: around the face given to it (faces go to the people
    whose columns they are nearest to, one each, least total distance), else its column's
    head square."""
    people = [i for i, p in enumerate(passes) if p.person]
    given = _faces_to_columns(found, [passes[i].region for i in people])
    squares = []
    for i, one in enumerate(passes):
        face = given[people.index(i)] if i in people else None
        squares.append(head_square(face, size, margin) if face is not None
                       else column_square(one.region, size))
    return squares


def _faces_to_columns(found: Sequence[Box], regions: Sequence[Box]) -> list[Optional[Box]]:
    """Each column's face: the one-to-one assignment with the least total horizontal distance
    from face centre to column centre; a face outside a column's own width is not its face."""
    if not regions:
        return []
    best: tuple[float, tuple] = (float("inf"), (None,) * len(regions))
    options = list(found) + [None] * len(regions)
    for chosen in itertools.permutations(range(len(options)), len(regions)):
        cost, faces_ = 0.0, []
        for region, index in zip(regions, chosen):
            face = options[index]
            if face is not None and _inside_column(face, region):
                cost += abs(_centre(face)[0] - _centre(region)[0])
                faces_.append(face)
            else:
                cost += 10 * (region[2] - region[0])  # no face costs more than any distance
                faces_.append(None)
        if cost < best[0]:
            best = (cost, tuple(faces_))
    return list(best[1])


def _inside_column(face: Box, region: Box) -> bool:
    x = _centre(face)[0]
    half = (region[2] - region[0]) / 2
    return region[0] - half <= x <= region[2] + half


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def head_square(face: Box, size: tuple[int, int], margin: float) -> Box:
    """A square around a face with `margin` face sides on each side (hair, chin), kept in the
    picture (shrunk if the picture is smaller)."""
    side = round(max(face[2] - face[0], face[3] - face[1]) * (1 + 2 * margin))
    x, y = _centre(face)
    return _square_at(x, y, side, size)


def column_square(region: Box, size: tuple[int, int]) -> Box:
    """Where a character's head is expected in its column: near the top, HEAD_SHARE of its
    width; for a column wider than tall, a square in its middle."""
    width = region[2] - region[0]
    side = max(8, round(HEAD_SHARE * width))
    x = (region[0] + region[2]) / 2
    y = region[1] + HEAD_TOP * size[1] + side / 2
    return _square_at(x, y, side, size)


def _square_at(x: float, y: float, side: int, size: tuple[int, int]) -> Box:
    side = max(8, min(side, size[0], size[1]))
    left = min(max(0, round(x - side / 2)), size[0] - side)
    top = min(max(0, round(y - side / 2)), size[1] - side)
    return left, top, left + side, top + side


def feathered_mask(side: int) -> Image.Image:
    """An ellipse filling a square, white inside, fading to black over its FEATHER edge; the
    square's border is exactly black, so nothing outside it ever changes."""
    edge = max(1, round(FEATHER * side))
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((edge, edge, side - 1 - edge, side - 1 - edge), fill=255)
    blurred = mask.filter(ImageFilter.GaussianBlur(edge / 2))
    border = Image.new("L", (side, side), 0)
    border.paste(blurred.crop((1, 1, side - 1, side - 1)), (1, 1))
    return border


def second_pass(pipe, first: Image.Image, passes: Sequence[CharacterPass], negative: str,
                options: PassOptions, seed: int) -> tuple[Image.Image, list[tuple[str, Box]]]:
    """Redraw each character's head on the first pass with only its own adapter (see the
    module's docstring); returns the picture and the square redrawn for each character."""
    import torch

    found = [f.box for f in faces.find_all_faces(first)] if any(p.person for p in passes) else []
    squares = place_characters(found, passes, first.size, options.margin)
    inpaint = _inpainter(pipe)
    picture = first.copy()
    for index, (one, square) in enumerate(zip(passes, squares)):
        side = square[2] - square[0]
        crop = picture.crop(square).resize((options.side, options.side), Image.Resampling.LANCZOS)
        mask = feathered_mask(options.side)
        activate(pipe, [one.adapter])
        redrawn = inpaint(**encode_long_prompt(pipe, one.prompt, negative), image=crop,
                          mask_image=mask, width=options.side, height=options.side,
                          strength=options.strength, num_inference_steps=options.steps,
                          guidance_scale=options.guidance,
                          generator=torch.Generator("cpu").manual_seed(seed + 1 + index)
                          ).images[0]
        back = redrawn.resize((side, side), Image.Resampling.LANCZOS)
        picture.paste(back, square[:2], feathered_mask(side))
    return picture, [(one.name, square) for one, square in zip(passes, squares)]


def _inpainter(pipe):
    """The SDXL inpainting pipeline over the loaded one's components, made once per pipeline."""
    with _inpainters_lock:
        if pipe not in _inpainters:
            from diffusers import StableDiffusionXLInpaintPipeline

            inpainter = StableDiffusionXLInpaintPipeline.from_pipe(pipe)
            inpainter.set_progress_bar_config(disable=True)
            _inpainters[pipe] = inpainter
        return _inpainters[pipe]
