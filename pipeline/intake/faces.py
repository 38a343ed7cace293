"""Finding faces and telling people apart, with dlib and the models that face-recognition-models ships.

Detection: dlib's MMOD CNN face detector (more accurate than the HOG detector, and it also finds
faces turned to the side) runs on a copy at most 512 px on its long side, where it finds faces
from about 70 px, i.e. about 14% of the photo's long side, in about 1.3 s on one CPU core. When
it finds none, the HOG frontal detector looks for smaller faces on a 1024 px copy, upsampled once
(about 0.4 s), and the CNN must confirm each of its proposals on a window around it.

Pictures with several faces, some small (a storybook page): `find_all_faces` runs the HOG detector
on a copy sized so that a face of `min_fraction` of the picture's long side (5% by default, about
50 px on a 1024 px page) is the HOG's smallest window (80 px: a 1600 px copy, about 0.25 s on one
core), the CNN confirms each proposal on a small window around it (the face at 80 px, 0.3 of its
side around it: about 0.1 s each), and the CNN also searches a 256 px copy for big faces in any
pose (from about 27% of the side, about 0.4 s), which the frontal HOG detector can miss.

Identity: dlib's 5-point landmarks align the face and its ResNet model turns it into a 128-number
descriptor; two photos of one adult are usually less than 0.6 apart (dlib's threshold; the model
was trained mostly on adults, so children's faces are told apart less reliably).

dlib is imported on first use, never at import time, and does not import torch. Its models are
loaded once per process and shared by all users (they hold no user data); calls are serialised
by a lock because dlib's detectors keep scratch buffers and are not thread-safe.
"""
from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

CNN_SIDE = 512  # long side of the copy the CNN detector searches
HOG_SIDE = 1024  # long side of the copy the HOG detector searches for smaller faces
SAME_PERSON = 0.6  # descriptor distance below which dlib considers two faces one person
_DESCRIBE_SIDE = 200  # face width at which landmarks and descriptor are computed
PAGE_MIN_FRACTION = 0.05  # smallest face find_all_faces looks for, as a fraction of the long side
BIG_FACE_SIDE = 256  # long side of the copy where find_all_faces' CNN looks for big faces
_HOG_WINDOW = 80  # the HOG detector's smallest face, in pixels of the copy it searches
_CONFIRM_SIDE = 80  # face width at which the CNN confirms a HOG proposal of find_all_faces
_CONFIRM_MARGIN = 0.3  # picture around a proposal the CNN sees, as a fraction of its side
_MAX_ZOOM = 4  # a small picture is searched at most 4 times enlarged (faces from 20 px)
_MODELS = {
    "cnn": "mmod_human_face_detector.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "identity": "dlib_face_recognition_resnet_model_v1.dat",
}
_lock = threading.Lock()


@dataclass(frozen=True)
class Face:
    """One face found in a photo: its box (left, top, right, bottom) in the photo's pixels."""

    box: tuple[int, int, int, int]
    confidence: float

    @property
    def size(self) -> int:
        """The side of the face box, in pixels."""
        left, top, right, bottom = self.box
        return max(right - left, bottom - top)


def model_path(name: str) -> Path:
    """Where face-recognition-models keeps a model file (found without importing the package,
    whose __init__ needs pkg_resources, absent from Python 3.12 environments)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed: pip install -r requirements.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall face-recognition-models")
    return path


@functools.lru_cache(maxsize=None)
def _models() -> dict:
    import dlib

    return {
        "dlib": dlib,
        "cnn": dlib.cnn_face_detection_model_v1(str(model_path(_MODELS["cnn"]))),
        "hog": dlib.get_frontal_face_detector(),
        "landmarks": dlib.shape_predictor(str(model_path(_MODELS["landmarks"]))),
        "identity": dlib.face_recognition_model_v1(str(model_path(_MODELS["identity"]))),
    }


def find_faces(image: Image.Image) -> list[Face]:
    """The faces in an RGB photo, largest first (empty when there is none)."""
    models = _models()
    with _lock:
        scale, small = _scaled(image, CNN_SIDE)
        faces = [_face(d.rect, d.confidence, scale) for d in models["cnn"](small, 0)]
        if not faces:
            faces = _small_faces(image, models)
    faces = [_clipped(face, image.size) for face in faces]
    return sorted(faces, key=lambda f: f.size, reverse=True)


def _small_faces(image: Image.Image, models: dict) -> list[Face]:
    """HOG proposals on a larger copy, each confirmed by the CNN on a window around it."""
    scale, large = _scaled(image, HOG_SIDE)
    found = []
    for rect in models["hog"](large, 1):
        proposal = _face(rect, 0.0, scale)
        left, top, right, bottom = proposal.box
        margin = proposal.size
        window = (max(0, left - margin), max(0, top - margin),
                  min(image.width, right + margin), min(image.height, bottom + margin))
        zoom = 100 / proposal.size  # the CNN sees the face at about 100 px
        crop = image.crop(window)
        crop = crop.resize((max(1, round(crop.width * zoom)), max(1, round(crop.height * zoom))),
                           Image.Resampling.BILINEAR)
        confirmed = models["cnn"](np.asarray(crop), 0)
        if confirmed:
            best = max(confirmed, key=lambda d: d.confidence)
            inner = _face(best.rect, best.confidence, 1 / zoom)
            found.append(Face(tuple(int(v) + window[i % 2] for i, v in enumerate(inner.box)),
                              inner.confidence))
    return found


def find_all_faces(image: Image.Image, min_fraction: float = PAGE_MIN_FRACTION) -> list[Face]:
    """Every face in an RGB picture from about `min_fraction` of its long side up, largest first.

    Unlike `find_faces` (made for portraits), it always looks for small faces too, so a page with
    a big face and a small one gets both. Small faces must be roughly frontal (HOG); big ones,
    from about a quarter of the side, may be turned (CNN)."""
    if not 0.02 <= min_fraction <= 1:  # 2%: the HOG would search a 4000 px copy (~1.6 s)
        raise ValueError(f"min_fraction must be between 0.02 and 1, not {min_fraction}")
    models = _models()
    with _lock:
        scale, small = _scaled(image, BIG_FACE_SIDE)
        found = [_face(d.rect, d.confidence, scale) for d in models["cnn"](small, 0)]
        side = min(round(_HOG_WINDOW / min_fraction), _MAX_ZOOM * max(image.size))
        scale, search = _resized(image, side)
        for rect in models["hog"](search, 0):
            proposal = _face(rect, 0.0, scale)
            if any(_same_place(proposal, face) for face in found):
                continue
            confirmed = _confirmed(image, proposal, models)
            if confirmed and not any(_same_place(confirmed, face) for face in found):
                found.append(confirmed)
    found = [_clipped(face, image.size) for face in found]
    return sorted(found, key=lambda f: f.size, reverse=True)


def _confirmed(image: Image.Image, proposal: Face, models: dict) -> Face | None:
    """The CNN's face on a small window around a HOG proposal, or None: HOG also fires on
    patterns that are no face (a badge, a fold of cloth)."""
    left, top, right, bottom = proposal.box
    margin = round(proposal.size * _CONFIRM_MARGIN)
    window = (max(0, left - margin), max(0, top - margin),
              min(image.width, right + margin), min(image.height, bottom + margin))
    zoom = _CONFIRM_SIDE / max(1, proposal.size)
    crop = image.crop(window)
    crop = crop.resize((max(1, round(crop.width * zoom)), max(1, round(crop.height * zoom))),
                       Image.Resampling.BILINEAR)
    detections = models["cnn"](np.asarray(crop), 0)
    if not detections:
        return None
    best = max(detections, key=lambda d: d.confidence)
    inner = _face(best.rect, best.confidence, 1 / zoom)
    return Face(tuple(v + window[i % 2] for i, v in enumerate(inner.box)), inner.confidence)


def _same_place(a: Face, b: Face) -> bool:
    """Two boxes of one face: the centre of either lies inside the other."""
    def inside(point, box):
        return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]

    def centre(box):
        return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

    return inside(centre(a.box), b.box) or inside(centre(b.box), a.box)


def describe_face(image: Image.Image, face: Face) -> np.ndarray:
    """The 128-number identity descriptor of one face (see `SAME_PERSON`)."""
    models = _models()
    left, top, right, bottom = face.box
    margin = face.size // 2
    window = (max(0, left - margin), max(0, top - margin),
              min(image.width, right + margin), min(image.height, bottom + margin))
    zoom = _DESCRIBE_SIDE / face.size
    crop = image.crop(window)
    crop = crop.resize((max(1, round(crop.width * zoom)), max(1, round(crop.height * zoom))),
                       Image.Resampling.LANCZOS)
    rect = models["dlib"].rectangle(*(round((v - window[i % 2]) * zoom)
                                      for i, v in enumerate(face.box)))
    pixels = np.ascontiguousarray(np.asarray(crop))
    with _lock:
        shape = models["landmarks"](pixels, rect)
        return np.array(models["identity"].compute_face_descriptor(pixels, shape))


def identity_outliers(descriptors: Sequence[np.ndarray]) -> list[int]:
    """Positions of faces that look like someone else: their median distance to all the other
    faces is over `SAME_PERSON`. Needs three faces or more (with two, neither is the odd one)."""
    if len(descriptors) < 3:
        return []
    stacked = np.stack(descriptors)
    distances = np.linalg.norm(stacked[:, None, :] - stacked[None, :, :], axis=-1)
    outliers = []
    for i, row in enumerate(distances):
        if float(np.median(np.delete(row, i))) > SAME_PERSON:
            outliers.append(i)
    return outliers


def _scaled(image: Image.Image, side: int) -> tuple[float, np.ndarray]:
    """A copy at most `side` px on its long side, and the factor from it back to the photo."""
    scale = max(image.size) / side
    if scale <= 1:
        return 1.0, np.asarray(image)
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    return scale, np.asarray(image.resize(size, Image.Resampling.BILINEAR))


def _resized(image: Image.Image, side: int) -> tuple[float, np.ndarray]:
    """A copy exactly `side` px on its long side (enlarged if need be), and the factor back."""
    scale = max(image.size) / side
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    return scale, np.asarray(image.resize(size, Image.Resampling.BILINEAR))


def _clipped(face: Face, size: tuple[int, int]) -> Face:
    left, top, right, bottom = face.box
    return Face((max(0, left), max(0, top), min(size[0], right), min(size[1], bottom)),
                face.confidence)


def _face(rect, confidence: float, scale: float) -> Face:
    box = (rect.left(), rect.top(), rect.right(), rect.bottom())
    return Face(tuple(round(v * scale) for v in box), float(confidence))
