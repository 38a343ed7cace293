"""Finding faces and telling people apart, with dlib and the models that face-recognition-models ships.

Detection: dlib's MMOD CNN face detector (more accurate than the HOG detector, and it also finds
faces turned to the side) runs on a copy at most 512 px on its long side, where it finds faces
from about 70 px, i.e. about 14% of the photo's long side, in about 1.3 s on one CPU core. When
it finds none, the HOG frontal detector looks for smaller faces on a 1024 px copy, upsampled once
(about 0.4 s), and the CNN must confirm each of its proposals on a window around it.

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


def _clipped(face: Face, size: tuple[int, int]) -> Face:
    left, top, right, bottom = face.box
    return Face((max(0, left), max(0, top), min(size[0], right), min(size[1], bottom)),
                face.confidence)


def _face(rect, confidence: float, scale: float) -> Face:
    box = (rect.left(), rect.top(), rect.right(), rect.bottom())
    return Face(tuple(round(v * scale) for v in box), float(confidence))
