"""Uploaded photos to square training crops, with a verdict per photo that a parent understands.

Each file is checked in this order; the first problem found is its verdict:
  1. its size on disk is within settings.max_upload_bytes;
  2. it is decoded by its content, never its name, and only as JPEG, PNG, WebP, BMP, GIF (first
     frame), TIFF, HEIC/HEIF or AVIF; its pixel count is checked before decoding (decompression
     bombs); a damaged file is reported, never half-read;
  3. EXIF orientation is applied, an embedded colour profile converted to sRGB, and any mode
     (CMYK, 16-bit, grayscale, alpha, palette) becomes 8-bit RGB, transparency over white;
     the metadata (EXIF with the camera, time and GPS position, XMP, comments) is dropped;
  4. the short side is at least MIN_SIDE px; the photo is not far too dark or bright;
  5. people: the largest face (with a warning when there are several), then a head-and-shoulders
     square around it; other kinds (pets, toys): the square that best holds the part of the photo
     that stands out, with a note;
  6. the face (or the square) is sharp enough.
A photo that is the same file as an earlier one, or nearly the same picture (perceptual hash),
is a duplicate. Then, across the batch: faces that look like someone else (identity
descriptors), and at most settings.max_photos accepted photos, in upload order.
One bad file never fails the batch. Nothing is written to disk here.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from ..progress import Progress, ProgressFn
from ..settings import Settings
from . import faces, quality

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "GIF", "TIFF", "HEIF", "AVIF")
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
              "DIB": ".bmp", "GIF": ".gif", "TIFF": ".tif", "HEIF": ".heic", "AVIF": ".avif"}
MIN_SIDE = 512  # px on the photo's short side
MAX_PIXELS = 60_000_000  # a 48-megapixel phone photo passes; refused before decoding past this
MIN_CROP = 256  # px: a face so small that its square is smaller than this is refused
HEAD_AND_SHOULDERS = 3.0  # crop side, in face-box sides
FACE_HEIGHT = 0.42  # where the face's centre sits in the crop, from the top
BLURRY = 0.6  # quality.blur_score above this: blurry (a 2 px Gaussian blur on a face scores ~0.65)
TOO_DARK = 60  # the 95th brightness percentile below this: far too dark
TOO_BRIGHT = 200  # the 5th brightness percentile above this: far too bright
NEAR_DUPLICATE = 8  # differing bits of 64 in the perceptual hash
PERSON_WORDS = frozenset((  # a kind holding one of these (or its plural) is a person
    "adult baby boy boyfriend bride brother child children cousin dad daddy daughter father "
    "friend gentleman girl girlfriend groom guy human husband infant kid kiddo lady man men "
    "mom momma mommy mother mum mummy nephew newborn niece parent person people sister son "
    "teen teenager toddler twin uncle wife woman women aunt auntie aunty "
    "gran grandad grandchild granddad granddaughter grandfather grandma grandmom grandmother "
    "grandmum grandpa grandparent grampa gramps granny grandson nan nana nanna "
    "stepbrother stepdad stepdaughter stepfather stepmom stepmother stepmum stepsister stepson "
    "ma mama mamma pa papa abuela abuelo nonna nonno oma opa "
    "king knight prince princess queen").split())
REASONS = ("not_an_image", "unreadable", "damaged", "too_large", "too_small", "too_dark",
           "too_bright", "no_face", "blurry", "duplicate", "someone_else", "over_limit")
_SIGNATURES = re.compile(  # the first bytes of the formats above (not of videos: "ftypqt  ")
    rb"\x89PNG|\xff\xd8\xff|GIF8|BM....\x00\x00\x00\x00|II\*\x00|MM\x00\*|RIFF....WEBP|"
    rb"....ftyp(?:heic|heix|hevc|hevx|heim|heis|mif1|msf1|avif|avis)", re.DOTALL)
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                 8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the turn that undoes it
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, RuntimeError)
_ANALYSIS_SIDE = 384  # px: sharpness is measured at most at this size
_THUMBNAIL = 256


class PhotoError(ValueError):
    """One photo can't be used; `reason` is a short code, the message says why and what to do."""

    def __init__(self, source: str, reason: str, advice: str):
        super().__init__(f"{source}: {advice}")
        self.source, self.reason, self.advice = source, reason, advice


@dataclass(frozen=True)
class PhotoReport:
    """The verdict on one uploaded photo, in words a parent understands."""

    index: int  # 1-based position in the upload
    source: str  # the uploaded file's name, as shown to the user
    accepted: bool
    reason: str = ""  # when rejected: one of REASONS
    message: str = ""  # when rejected: why, and what to do instead
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: "photo 3 (IMG_3.heic): no face found; use a photo where ..."."""
        verdict = "accepted" if self.accepted else self.message
        return "; ".join([f"photo {self.index} ({self.source}): {verdict}", *self.warnings])

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PhotoCrop:
    """An accepted photo's square crop, at the training resolution."""

    index: int
    source: str
    path: Path  # the uploaded file, kept only if the user asks
    format: str  # what the content turned out to be, e.g. "HEIF"
    image: Image.Image
    original_size: tuple[int, int]  # (height, width) of the upright photo
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) in the upright photo
    descriptor: Optional[tuple[float, ...]] = None  # the face's identity (people only)


@dataclass(frozen=True)
class Review:
    """Every photo's verdict, and the crops of the accepted ones (in upload order)."""

    reports: tuple[PhotoReport, ...]
    crops: tuple[PhotoCrop, ...]


@dataclass(frozen=True)
class _Candidate:
    crop: PhotoCrop
    phash: int
    descriptor: Optional[np.ndarray]
    warnings: tuple[str, ...]


def is_person(kind: str) -> bool:
    """Whether a kind ("girl", "old man", "golden retriever") is a person, whose face is needed."""
    return any(word in PERSON_WORDS or word.removesuffix("s") in PERSON_WORDS
               for word in re.findall(r"[a-z]+", kind.casefold()))


def review_photos(settings: Settings, kind: str, photos: Sequence[str | Path], *,
                  on_progress: ProgressFn | None = None) -> Review:
    """Check and crop a batch of uploads for a character of this kind; never raises for a bad file."""
    person = is_person(kind)
    reports: dict[int, PhotoReport] = {}
    kept: list[_Candidate] = []
    seen: dict[str, int] = {}  # sha256 of each file read -> its photo number
    for index, path in enumerate(map(Path, photos), start=1):
        if on_progress:
            on_progress(Progress(index - 1, len(photos), "photo", path.name))
        try:
            data = _read(path, settings.max_upload_bytes)
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                raise PhotoError(path.name, "duplicate", f"is the same file as photo "
                                 f"{seen[digest]}; each photo counts once")
            seen[digest] = index
            kept.append(_analyse(settings, path, data, index, kind, person, kept))
        except PhotoError as err:
            reports[index] = PhotoReport(index, path.name, False, err.reason, err.advice)
    if on_progress:
        on_progress(Progress(len(photos), len(photos), "photo"))
    return _final_verdicts(settings, kept, reports)


def open_photo(path: Path, max_bytes: int) -> tuple[Image.Image, str]:
    """An upright 8-bit RGB image from an untrusted file, and its real format ("JPEG", "HEIF")."""
    return _decode(_read(path, max_bytes), path.name)


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_large(path.name, size, max_bytes)
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise PhotoError(path.name, "unreadable",
                         f"could not be read ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise _too_large(path.name, len(data), max_bytes)
    return data


def _decode(data: bytes, source: str) -> tuple[Image.Image, str]:
    try:
        image = Image.open(io.BytesIO(data), formats=_formats())
    except Image.DecompressionBombError:
        raise _too_many_pixels(source, None) from None
    except _DECODE_ERRORS as err:  # UnidentifiedImageError is an OSError
        if not _SIGNATURES.match(data[:12]):  # what it starts with says what it is
            raise PhotoError(source, "not_an_image", "is not a photo we can read; use JPEG, "
                             "PNG, HEIC, WebP, GIF, BMP or TIFF") from None
        unidentified = isinstance(err, UnidentifiedImageError)
        raise _damaged(source, "its header is cut short or broken" if unidentified else err) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(source, width * height)
    if width < 1 or height < 1:
        raise _damaged(source, "no pixels")
    try:
        image.load()
        return _upright_rgb(image), image.format or "unknown"
    except _DECODE_ERRORS as err:
        raise _damaged(source, err) from None


@functools.lru_cache(maxsize=None)
def _formats() -> tuple[str, ...]:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    Image.init()
    return tuple(name for name in FORMATS if name in Image.OPEN)


def _upright_rgb(image: Image.Image) -> Image.Image:
    """EXIF orientation applied, colour profile to sRGB, any mode to 8-bit RGB, no metadata."""
    profile = image.info.get("icc_profile")
    upright = _turned_upright(image)
    if profile and upright.mode in ("RGB", "RGBA", "CMYK"):
        try:
            upright = ImageCms.profileToProfile(
                upright, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                ImageCms.createProfile("sRGB"), outputMode="RGBA" if upright.mode == "RGBA" else "RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: the pixels are used as they are
    if upright.mode == "LAB":  # CIELab TIFFs: Pillow's own conversion gives wrong colours
        upright = ImageCms.applyTransform(upright, _lab_to_srgb())
    if upright.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        upright = _gray_to_8_bit(upright)
    if upright.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        upright = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    rgb = upright.convert("RGB")
    rgb.info = {}  # crops are cut from this image: none may carry where or when it was taken
    return rgb


def _turned_upright(image: Image.Image) -> Image.Image:
    """The photo as its EXIF (or XMP) orientation says to show it. Unlike ImageOps.exif_transpose
    this doesn't rewrite the EXIF, which fails on a damaged tag that has nothing to do with it."""
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    method = _ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(method) if method is not None else image


@functools.lru_cache(maxsize=None)
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"),
                                   "LAB", "RGB")


def _gray_to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit or float grayscale as 8-bit "L". 16-bit modes span 0-65535 whatever the
    pixels (a dark photo stays dark); "I" and "F" don't say their range, so it is guessed from
    the largest value: 0-1, 0-255 or 0-65535."""
    values = np.asarray(image, dtype=np.float64)
    largest = float(values.max())
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "F" and largest <= 1:
        top = 1.0
    elif largest <= 255:
        top = 255.0
    else:
        top = max(65535.0, largest)
    return Image.fromarray(np.clip(values * 255.0 / top, 0, 255).astype(np.uint8), "L")


def _analyse(settings: Settings, path: Path, data: bytes, index: int, kind: str, person: bool,
             kept: Sequence[_Candidate]) -> _Candidate:
    """One photo's checks, from decoding to its crop; raises PhotoError with the first problem."""
    source = path.name
    image, fmt = _decode(data, source)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise PhotoError(source, "too_small", f"is too small ({width}x{height} px); use a photo "
                         f"at least {MIN_SIDE} px on its short side, e.g. the original from the phone")
    thumbnail = image.resize(_fit(image.size, _THUMBNAIL), Image.Resampling.BILINEAR, reducing_gap=2.0)
    gray = np.asarray(thumbnail.convert("L"))
    _check_exposure(source, gray)
    phash = quality.dhash(thumbnail)
    near = next((k for k in kept if quality.hamming(k.phash, phash) <= NEAR_DUPLICATE), None)
    if near:
        raise PhotoError(source, "duplicate", f"is nearly the same as photo {near.crop.index} "
                         "(a burst shot or an edited copy?); a different moment or angle "
                         "teaches more")
    if person:
        box, sharpness_region, descriptor, warnings = _person_square(source, image, kind)
    else:
        box = sharpness_region = _salient_box(gray, image.size)
        descriptor = None
        warnings = [f"no face needed for a {kind}: the square crop keeps the part of the photo "
                    f"that stands out; check that it shows the whole {kind}"]
    if _blur(image.crop(sharpness_region)) > BLURRY:
        raise _blurry(source)
    side = box[2] - box[0]
    if side < settings.resolution:
        warnings.append(f"the crop is {side} px and will be enlarged to {settings.resolution} px, "
                        "so it may look soft; a closer or larger photo gives a sharper likeness")
    crop_image = image.crop(box).resize((settings.resolution, settings.resolution),
                                        Image.Resampling.LANCZOS, reducing_gap=3.0)
    crop = PhotoCrop(index, source, path, fmt, crop_image, (height, width), box,
                     None if descriptor is None else tuple(float(v) for v in descriptor))
    return _Candidate(crop, phash, descriptor, tuple(warnings))


def _check_exposure(source: str, gray: np.ndarray) -> None:
    low, high = quality.exposure(gray)
    if high < TOO_DARK:
        raise PhotoError(source, "too_dark", "is far too dark; use a photo taken in good light")
    if low > TOO_BRIGHT:
        raise PhotoError(source, "too_bright", "is far too bright (washed out); use a photo "
                         "taken out of direct glare")


def _person_square(source: str, image: Image.Image,
                   kind: str) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int],
                                       np.ndarray, list[str]]:
    """The head-and-shoulders square of the largest face, the region whose sharpness counts,
    the face's identity descriptor, and a warning when there are several faces."""
    found = faces.find_faces(image)
    if not found and _blur(image) > BLURRY:
        raise _blurry(source)  # the likely reason no face was found
    if not found:
        raise PhotoError(source, "no_face", "no face found; use a photo where the face is "
                         "clearly visible, looking roughly towards the camera")
    face = found[0]
    box = face_square(face.box, image.size)
    if box[2] - box[0] < MIN_CROP:
        raise PhotoError(source, "too_small", "the face is too small in this photo; use a "
                         "closer photo where the face fills more of the picture")
    warnings = [f"{len(found)} faces found; the largest was used (photos of the {kind} alone "
                "work best)"] if len(found) > 1 else []
    return box, _grow(face.box, 0.1, image.size), faces.describe_face(image, face), warnings


def face_square(face_box: tuple[int, int, int, int],
                size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A head-and-shoulders square around a face box, kept inside a photo of this (w, h) size."""
    left, top, right, bottom = face_box
    width, height = size
    side = min(round(max(right - left, bottom - top) * HEAD_AND_SHOULDERS), width, height)
    x = round((left + right) / 2 - side / 2)
    y = round((top + bottom) / 2 - side * FACE_HEIGHT)
    x, y = min(max(0, x), width - side), min(max(0, y), height - side)
    return x, y, x + side, y + side


def _salient_box(gray: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The square of the photo's short side that best holds what stands out (see quality)."""
    width, height = size
    side = min(width, height)
    x, y = quality.salient_square(gray)
    scale = width / gray.shape[1]
    x, y = min(round(x * scale), width - side), min(round(y * scale), height - side)
    return x, y, x + side, y + side


def _final_verdicts(settings: Settings, kept: list[_Candidate],
                    reports: dict[int, PhotoReport]) -> Review:
    """Someone else's face and the photo limit, decided across the whole batch."""
    with_faces = [k for k in kept if k.descriptor is not None]
    odd = {with_faces[i].crop.index for i in faces.identity_outliers([k.descriptor for k in with_faces])}
    accepted = []
    for item in kept:
        index, source = item.crop.index, item.crop.source
        if index in odd:
            reports[index] = PhotoReport(
                index, source, False, "someone_else", "may show someone else: the face doesn't "
                "match the other photos, so it was left out; if it is the same person, a sharper "
                "photo facing the camera may match")
        elif len(accepted) >= settings.max_photos:
            reports[index] = PhotoReport(index, source, False, "over_limit", "not used: a "
                                         f"character uses at most {settings.max_photos} photos")
        else:
            accepted.append(item.crop)
            reports[index] = PhotoReport(index, source, True, warnings=item.warnings)
    return Review(tuple(reports[i] for i in sorted(reports)), tuple(accepted))


def _blur(image: Image.Image) -> float:
    """quality.blur_score at most _ANALYSIS_SIDE px: about the detail a training crop keeps."""
    small = image.resize(_fit(image.size, _ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    return quality.blur_score(np.asarray(small.convert("L")))


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _grow(box: tuple[int, int, int, int], margin: float,
          size: tuple[int, int]) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    dx, dy = round((right - left) * margin), round((bottom - top) * margin)
    return max(0, left - dx), max(0, top - dy), min(size[0], right + dx), min(size[1], bottom + dy)


def _too_large(source: str, size: int, limit: int) -> PhotoError:
    return PhotoError(source, "too_large", f"is {size / 2**20:.1f} MB; the limit is "
                      f"{limit / 2**20:.0f} MB (share or export a smaller copy of the photo)")


def _too_many_pixels(source: str, pixels: int | None) -> PhotoError:
    count = f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels"
    return PhotoError(source, "too_large", f"has {count}; the limit is {MAX_PIXELS // 10**6} "
                      "megapixels (export a smaller copy of the photo)")


def _blurry(source: str) -> PhotoError:
    return PhotoError(source, "blurry", "is blurry; use a sharp photo (hold still, tap to focus)")


def _damaged(source: str, err: object) -> PhotoError:
    return PhotoError(source, "damaged", f"is damaged or incomplete and can't be opened ({err}); "
                      "try exporting or copying it again")
