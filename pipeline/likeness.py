"""Likeness: do the people drawn on a page look like their photos? Scores for parents and ranking.

A character's `Identity` is the dlib descriptors of its kept photos (made once, stored with the
character as JSON). `score_page` finds every face on a picture, describes each, gives each
character with a face model its face (the one-to-one assignment with the least total distance),
and reports per character: found or not, a 0-100 likeness, whether the face is nearer to another
character of the page ("looks like Grandma here") or to one training photo than drawings ever are
("copied"). `rank` orders candidate pictures of a page, `needs_redraw` flags a poor one, and
`consistency` tells how alike a character's faces are across a book.

Finding faces on a page (`faces.find_all_faces`): faces in illustrations are often small and
several. Measured on one core of the 2-core development machine, the other core busy
(bench/likeness_speed.py): the CNN on a 512 px copy (find_faces) costs 1.6-1.85 s and misses
faces under ~14% of the side; HOG on a 1024 px copy upsampled once costs 0.33-0.40 s. Chosen:
HOG on a 1600 px copy (its 80 px window is then 5% of a page's side, ~50 px on 1024 px; 0.23-0.25
s; finds frontal faces down to ~4%), each proposal confirmed by the CNN on a small window around
it (the face at 80 px, 0.3 of its side around: ~0.1 s each; it drops HOG's false alarms, such as
a badge on a suit), plus the CNN on a 256 px copy for big faces in any pose (from ~27% of the
side; 0.36-0.42 s). Describing a face costs ~0.1 s. A 1024x1024 page with a big and a small face
scores in 0.81-0.93 s (median of 7-9 runs). Small faces must be roughly frontal: a small face in
profile is "not found".

Nothing here imports torch; dlib is imported on first use. Same picture, same scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
from PIL import Image

from .characters import Character, CharacterStore
from .intake import faces
from .intake.photos import is_person
from .store import StoreError, atomic_write_json, read_json

# --- Every threshold of the scoring, in one place. ----------------------------------------------
# Distances are dlib's (Euclidean, between 128-number descriptors). dlib's own threshold is 0.6
# (faces.SAME_PERSON: 99.4% right on LFW). Different photos of one adult are typically 0.3-0.5
# apart, different people 0.7-1.0. Measured with the test photos (tests/photo_fixtures.py):
#   the astronaut's photo vs itself rotated or padded        0.04-0.06   (copies)
#   vs itself mirrored, or mirrored and re-lit               0.09-0.21
#   the astronaut vs Grace Hopper                            0.64-0.69   (two different women)
#   Grace Hopper vs herself mirrored                         0.16
#   the astronaut vs a soft "watercolour" filter of her      0.48-0.54   (PIL: blur, mode filter)
#   vs a hard "cartoon" filter of her                        0.71-0.75   (median, posterise, edges)
# and with the pages of tests/test_likeness.py (1024 px; Mia's identity: the astronaut's photo as
# is, rotated and padded; Gran's: Grace Hopper's photo), mean of the 3 nearest:
#   a new photo of Mia (hers mirrored), face at 20% / 10% / 5.5% of the side   0.20 / 0.21 / 0.24
#   one of Mia's own photos pasted at 25%                       0.05 (0.04 to the nearest: copied)
#   Grace Hopper at 5.5-20%: to Mia 0.66-0.71; to Gran 0.10-0.18 (her own photo pasted: copies
#   pasted as small as 5% lose detail and drift to ~0.16, over COPIED)
# The more stylised a drawing, the farther even a good likeness (the filters above): a hard
# cartoon style may need thresholds of its own.
FULL_LIKENESS = 0.35  # distance that scores 100: as near as two good photos of one person
NO_LIKENESS = 0.75  # distance that scores 0: as far as two different people usually are
NOT_THIS_PERSON = faces.SAME_PERSON  # over it, the face is someone else's: "not found" (0.6)
COPIED = 0.15  # under it, to ONE training photo: that photo pasted, not drawn (photos of one
#                person are rarely under 0.2 apart; copies of one photo are 0.0-0.1)
CLOSE = 70  # likeness from which a face is "a close likeness" (distance <= 0.47)
FAIR = 45  # likeness from which it is "a fair likeness" (distance <= 0.57); below: "weak"
NEAREST = 3  # a character's distance to a face: the mean of its 3 nearest descriptors
MAX_FACES = 8  # faces described and assigned per picture: the largest
FACE_MODEL = "dlib_face_recognition_resnet_model_v1"  # what made the descriptors
DESCRIPTOR_SIZE = 128
_NO_FACE = 10.0  # cost of leaving a character without a face, over any distance (see _assign)

NO_FACE_MODEL = "no_face_model"  # not-scored reasons: a pet or an object
NO_FACE_IN_PHOTOS = "no_face_in_photos"  # a person whose photos showed no face
_REASONS = {NO_FACE_MODEL: "pets and objects have no face model",
            NO_FACE_IN_PHOTOS: "no face was found in their photos"}

Box = tuple[int, int, int, int]
Descriptor = tuple[float, ...]


def likeness(distance: float) -> int:
    """The 0-100 likeness of a descriptor distance: 100 at `FULL_LIKENESS` or nearer, 0 at
    `NO_LIKENESS` or farther, linear between."""
    share = (NO_LIKENESS - distance) / (NO_LIKENESS - FULL_LIKENESS)
    return round(100 * min(1.0, max(0.0, share)))


def _descriptor(values: Iterable[float]) -> Descriptor:
    """128 finite numbers, rounded to 6 decimals (1e-5 at most on a distance) for short JSON."""
    numbers = tuple(round(float(v), 6) for v in values)
    if len(numbers) != DESCRIPTOR_SIZE or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"a face descriptor is {DESCRIPTOR_SIZE} finite numbers, "
                         f"not {len(numbers)}")
    return numbers


@dataclass(frozen=True)
class Identity:
    """What a character looks like to the face model: the descriptors of its kept photos.

    Stored with the character (`to_json`), so scoring never re-reads its photos. An identity
    with no descriptor is valid but `empty`: its character is then not scored."""

    descriptors: tuple[Descriptor, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "descriptors", tuple(_descriptor(d) for d in self.descriptors))

    @property
    def empty(self) -> bool:
        return not self.descriptors

    def distance(self, descriptor: Sequence[float]) -> float:
        """A robust distance from a face to this person: the mean of the `NEAREST` nearest
        descriptors. The nearest alone would reward copying one photo; the mean of all would
        punish a person whose photos differ (glasses on and off)."""
        near = np.sort(self._distances(descriptor))[:NEAREST]
        return float(near.mean())

    def nearest(self, descriptor: Sequence[float]) -> float:
        """The distance from a face to the nearest single photo (for `COPIED`)."""
        return float(self._distances(descriptor).min())

    def _distances(self, descriptor: Sequence[float]) -> np.ndarray:
        if self.empty:
            raise ValueError("an empty identity has no distance to a face")
        return np.linalg.norm(np.asarray(self.descriptors) - np.asarray(descriptor), axis=1)

    def to_json(self) -> dict:
        return {"model": FACE_MODEL, "descriptors": [list(d) for d in self.descriptors]}

    @classmethod
    def from_json(cls, record: dict) -> "Identity":
        if record.get("model", FACE_MODEL) != FACE_MODEL:
            raise ValueError(f"this identity was made by {record['model']}, not {FACE_MODEL}: "
                             "describe the character's photos again")
        return cls(tuple(record["descriptors"]))


IDENTITY_FILE = "identity.json"  # in the character's folder, beside character.json


def save_identity(store: CharacterStore, character: Character, identity: Identity) -> None:
    """Keep a character's identity with it (atomic), so scoring never re-reads its photos."""
    atomic_write_json(store.path(character, IDENTITY_FILE), identity.to_json())


def character_identity(store: CharacterStore, character: Character) -> Optional[Identity]:
    """A character's identity: None for pets and objects (no face model); for people, the one
    kept with it, else made from its crops on first use (characters made before scoring existed,
    or a damaged file) and kept."""
    if not is_person(character.kind):
        return None
    path = store.path(character, IDENTITY_FILE)
    if path.is_file():
        try:
            return Identity.from_json(read_json(path))
        except (StoreError, ValueError, KeyError, TypeError):
            pass  # damaged or from another face model: made again below
    crops = []
    for crop in character.crops:
        with Image.open(store.path(character, crop.file)) as image:
            crops.append(image.convert("RGB"))
    identity = identity_from_images(crops)
    save_identity(store, character, identity)
    return identity


def identity_from_images(images: Iterable[Image.Image]) -> Identity:
    """The identity of a character from its photos (its square training crops): the largest
    face of each described; photos where no face is found are skipped."""
    descriptors = []
    for image in images:
        image = image if image.mode == "RGB" else image.convert("RGB")
        found = faces.find_faces(image)
        if found:
            descriptors.append(faces.describe_face(image, found[0]))
    return Identity(tuple(descriptors))


@dataclass(frozen=True)
class CharacterScore:
    """How one character of a page came out on one picture.

    `distance`, `box` and `descriptor` describe the face given to the character, also when it is
    too far to count as found (a stranger's face is not a likeness). `descriptor` is for the
    engine (book consistency), not for parents: `to_json()` leaves it out."""

    name: str
    scored: bool  # False: no face model (a pet, an object) or no face in its photos
    found: bool = False
    likeness: Optional[int] = None  # 0-100; None when not scored or not found
    distance: Optional[float] = None
    looks_like: Optional[str] = None  # another character of the page nearer to this face
    copied: bool = False  # nearer to one training photo than a drawing ever is
    box: Optional[Box] = None  # (left, top, right, bottom) in the picture's pixels
    reason: Optional[str] = None  # why not scored: NO_FACE_MODEL or NO_FACE_IN_PHOTOS
    descriptor: Optional[Descriptor] = field(default=None, repr=False)

    def describe(self) -> str:
        """One line a parent understands, e.g. "Mia: a close likeness (84/100)"."""
        if not self.scored:
            return f"{self.name}: not scored ({_REASONS.get(self.reason, 'no face model')})"
        if self.looks_like:
            return f"{self.name}: looks like {self.looks_like} here"
        if not self.found:
            return f"{self.name}: not found on this picture"
        if self.copied:
            return f"{self.name}: looks copied from a photo"
        word = "close" if self.likeness >= CLOSE else "fair" if self.likeness >= FAIR else "weak"
        return f"{self.name}: a {word} likeness ({self.likeness}/100)"

    def to_json(self, *, full: bool = False) -> dict:
        """The entry the CLI prints; `full` adds what the engine keeps (descriptor, reason)."""
        record = {"name": self.name, "found": self.found, "likeness": self.likeness,
                  "looks_like": self.looks_like, "copied": self.copied, "scored": self.scored,
                  "distance": self.distance, "box": list(self.box) if self.box else None}
        if full:
            record["reason"] = self.reason
            record["descriptor"] = list(self.descriptor) if self.descriptor else None
        return record

    @classmethod
    def from_json(cls, record: dict) -> "CharacterScore":
        box, descriptor = record.get("box"), record.get("descriptor")
        return cls(name=record["name"], scored=record["scored"], found=record["found"],
                   likeness=record["likeness"], distance=record.get("distance"),
                   looks_like=record["looks_like"], copied=record["copied"],
                   box=tuple(box) if box else None, reason=record.get("reason"),
                   descriptor=_descriptor(descriptor) if descriptor else None)


@dataclass(frozen=True)
class PageScore:
    """The scores of one picture for a page, one per character in the cast's order."""

    characters: tuple[CharacterScore, ...]
    faces: int = 0  # faces found and described on the picture (at most MAX_FACES)

    @property
    def _likenesses(self) -> list[int]:
        return [c.likeness if c.found else 0 for c in self.characters if c.scored]

    @property
    def weakest(self) -> Optional[int]:
        """The lowest likeness of a scored character (0 when one is not found); None when
        nobody on the page is scored."""
        return min(self._likenesses, default=None)

    @property
    def mean(self) -> Optional[float]:
        """The mean likeness of the scored characters (not found counts 0), or None."""
        values = self._likenesses
        return round(sum(values) / len(values), 1) if values else None

    @property
    def sort_key(self) -> tuple[float, float]:
        """Higher is better: the weakest character first, then the mean (-1 when unscored)."""
        weakest, mean = self.weakest, self.mean
        return (-1 if weakest is None else weakest, -1 if mean is None else mean)

    def character(self, name: str) -> CharacterScore:
        for score in self.characters:
            if score.name == name:
                return score
        raise KeyError(name)

    def describe(self) -> str:
        """One line per character, in the cast's order."""
        return "\n".join(c.describe() for c in self.characters)

    def to_json(self, *, full: bool = False) -> dict:
        return {"characters": [c.to_json(full=full) for c in self.characters],
                "weakest": self.weakest, "mean": self.mean, "faces": self.faces}

    @classmethod
    def from_json(cls, record: dict) -> "PageScore":
        return cls(tuple(CharacterScore.from_json(c) for c in record["characters"]),
                   record.get("faces", 0))


Cast = Sequence[tuple[str, Optional[Identity]]]


def score_page(image: Image.Image, cast: Cast, *,
               min_fraction: float = faces.PAGE_MIN_FRACTION) -> PageScore:
    """Score one picture for a page whose cast is (name, Identity or None) in the page's order;
    None is a character without a face model (a pet, an object): it is not scored."""
    _check_cast(cast)
    found: list[tuple[Box, np.ndarray]] = []
    if any(identity is not None and not identity.empty for _, identity in cast):
        image = image if image.mode == "RGB" else image.convert("RGB")
        for face in faces.find_all_faces(image, min_fraction)[:MAX_FACES]:
            found.append((face.box, faces.describe_face(image, face)))
    return score_faces(found, cast)


def score_faces(found: Sequence[tuple[Box, Sequence[float]]], cast: Cast) -> PageScore:
    """`score_page` for faces already found and described: [(box, descriptor)]."""
    _check_cast(cast)
    described = [(tuple(int(v) for v in box), _descriptor(d)) for box, d in found]
    people = [(i, name, identity) for i, (name, identity) in enumerate(cast)
              if identity is not None and not identity.empty]
    distances = np.array([[identity.distance(d) for _, d in described]
                          for _, _, identity in people]).reshape(len(people), len(described))
    scores: list[CharacterScore] = [
        CharacterScore(name, False, reason=NO_FACE_MODEL if identity is None else NO_FACE_IN_PHOTOS)
        for name, identity in cast]
    for row, ((index, name, identity), face) in enumerate(zip(people, _assign(distances))):
        if face is None:
            scores[index] = CharacterScore(name, True)
            continue
        box, descriptor = described[face]
        distance = float(distances[row, face])
        found_here = distance <= NOT_THIS_PERSON
        nearer = [(float(distances[other, face]), people[other][1]) for other in range(len(people))
                  if other != row and distances[other, face] < min(distance, NOT_THIS_PERSON)]
        scores[index] = CharacterScore(
            name, True, found=found_here, likeness=likeness(distance) if found_here else None,
            distance=round(distance, 4), looks_like=min(nearer)[1] if nearer else None,
            copied=found_here and identity.nearest(descriptor) < COPIED, box=box,
            descriptor=descriptor)
    return PageScore(tuple(scores), len(described))


def _check_cast(cast: Cast) -> None:
    names = [name for name, _ in cast]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"{name} is in the page's cast twice")


def _assign(distances: np.ndarray) -> tuple[Optional[int], ...]:
    """The face of each character (a row), or None, in the one-to-one assignment with the least
    total distance. A distance counts at most `NOT_THIS_PERSON` (a stranger is a stranger,
    however strange), raw distances break ties, and a face left to nobody while a character
    has none costs more than any distance. Exact: a search over sets of used faces, small with
    at most MAX_FACES faces."""
    characters, count = distances.shape
    best: dict[int, tuple[tuple[float, float], tuple[Optional[int], ...]]] = {0: ((0.0, 0.0), ())}
    for row in range(characters):
        step: dict[int, tuple[tuple[float, float], tuple[Optional[int], ...]]] = {}
        for used, ((capped, raw), chosen) in best.items():
            for face in [None, *range(count)]:
                if face is None:
                    key, cost = used, (capped + NOT_THIS_PERSON, raw + _NO_FACE)
                elif used >> face & 1:
                    continue
                else:
                    d = float(distances[row, face])
                    key, cost = used | 1 << face, (capped + min(d, NOT_THIS_PERSON), raw + d)
                if key not in step or cost < step[key][0]:
                    step[key] = (cost, chosen + (face,))
        best = step
    return min(best.values(), key=lambda entry: entry[0])[1]


def rank(scores: Sequence[PageScore]) -> list[int]:
    """Positions of candidate pictures of one page, best first: the weakest character's
    likeness, then the mean; ties (and pages where nobody is scored) keep the drawing order."""
    return sorted(range(len(scores)), key=lambda i: scores[i].sort_key, reverse=True)


def needs_redraw(score: PageScore, threshold: int = FAIR) -> bool:
    """True when a scored character is not found, below `threshold`, or looks like another."""
    return any(c.scored and (not c.found or c.likeness < threshold or c.looks_like is not None)
               for c in score.characters)


def consistency(descriptors: Sequence[Optional[Sequence[float]]]) -> Optional[int]:
    """How alike one character's faces are from page to page, on the likeness scale: the mean
    distance between every two of its found faces (None: not found on that page). None with
    fewer than two faces."""
    found = [np.asarray(_descriptor(d)) for d in descriptors if d is not None]
    if len(found) < 2:
        return None
    pairs = [float(np.linalg.norm(a - b)) for i, a in enumerate(found) for b in found[i + 1:]]
    return likeness(sum(pairs) / len(pairs))


def book_consistency(pages: Sequence[PageScore]) -> dict[str, Optional[int]]:
    """`consistency` of every scored character across a book's chosen pictures, by name."""
    faces_of: dict[str, list[Descriptor]] = {}
    for page in pages:
        for c in page.characters:
            if c.scored:
                faces_of.setdefault(c.name, [])
                if c.found and c.descriptor:
                    faces_of[c.name].append(c.descriptor)
    return {name: consistency(found) for name, found in faces_of.items()}
