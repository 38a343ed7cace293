"""Photo intake: every format and mode, orientation, every verdict, a mixed batch, pets, faces.

Files are made here from real photos shipped in installed packages (see photo_fixtures.py).
Face detection costs about 1.5 s a photo, so the mixed batch is reviewed once per module.
"""
from __future__ import annotations

import dataclasses
import io
import random
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from photo_fixtures import astronaut, face_variants, grace_hopper, noise_png, on_canvas
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from pipeline.intake import faces, photos, quality
from pipeline.settings import Settings

LIMIT = 25 * 2**20


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size but holds almost no data (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


@pytest.mark.parametrize("fmt, options, tolerance", [
    ("JPEG", {"quality": 95}, 4), ("PNG", {}, 0), ("WEBP", {"lossless": True}, 0),
    ("BMP", {}, 0), ("TIFF", {}, 0), ("HEIF", {"quality": 95}, 6), ("AVIF", {"quality": 95}, 6),
])
def test_every_format_opens_by_its_content_not_its_name(tmp_path, fmt, options, tolerance):
    source = astronaut()
    path = tmp_path / "upload.png"  # the name lies for every format but PNG
    buffer = io.BytesIO()
    photos._formats()  # HEIF needs pillow-heif's opener, registered on first use
    source.save(buffer, format=fmt, **options)
    path.write_bytes(buffer.getvalue())
    image, found = photos.open_photo(path, LIMIT)
    assert found == fmt and image.mode == "RGB" and image.size == source.size
    assert _diff(image, source) <= tolerance


def test_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (600, 520), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    image, fmt = photos.open_photo(tmp_path / "anim.gif", LIMIT)
    assert fmt == "GIF" and image.getpixel((10, 10)) == (255, 0, 0)


def _mode_image(mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.full((520, 600), 32768, np.uint16))
    if mode == "I;16 dark":
        return Image.fromarray(np.full((520, 600), 200, np.uint16))
    if mode == "LAB":
        return Image.new("LAB", (600, 520), (128, 188, 128))  # L 50%, a* +60 (a is offset by 128)
    if mode == "F":
        return Image.fromarray(np.full((520, 600), 0.5, np.float32))
    if mode == "RGBA":
        return Image.new("RGBA", (600, 520), (255, 0, 0, 0))
    if mode == "LA":
        return Image.new("LA", (600, 520), (0, 0))
    if mode == "P":
        image = Image.new("P", (600, 520), 1)
        image.putpalette([0, 0, 0, 0, 128, 255] + [0] * 762)
        return image
    if mode == "CMYK":
        return Image.new("CMYK", (600, 520), (0, 255, 255, 0))
    return Image.new(mode, (600, 520), 200)


@pytest.mark.parametrize("mode, fmt, expected", [
    ("I;16", "PNG", (128, 128, 128)),  # 16-bit: scaled, not clipped to white
    ("I;16", "TIFF", (128, 128, 128)),
    ("I;16 dark", "PNG", (1, 1, 1)),  # 200 of 65535 is nearly black, not 200 of 255
    ("LAB", "TIFF", (208, 65, 122)),  # skimage.color.lab2rgb's sRGB for L 50.2, a* 60, b* 0
    ("F", "TIFF", (128, 128, 128)),
    ("RGBA", "PNG", (255, 255, 255)),  # transparent: over white, not black
    ("LA", "PNG", (255, 255, 255)),
    ("P", "PNG", (0, 128, 255)),
    ("P", "GIF", (0, 128, 255)),
    ("CMYK", "JPEG", (255, 0, 0)),
    ("CMYK", "TIFF", (255, 0, 0)),
    ("L", "PNG", (200, 200, 200)),
    ("1", "BMP", (255, 255, 255)),
])
def test_every_mode_becomes_8_bit_rgb(tmp_path, mode, fmt, expected):
    path = tmp_path / f"photo.{fmt.lower()}"
    _mode_image(mode).save(path, format=fmt)
    image, _ = photos.open_photo(path, LIMIT)
    assert image.mode == "RGB" and image.size == (600, 520)
    assert all(abs(a - b) <= 3 for a, b in zip(image.getpixel((300, 260)), expected))


def _swapped_profile() -> bytes:
    """An RGB colour profile whose red primary is sRGB's blue and blue primary sRGB's red:
    fpdf2's sRGB profile with its rXYZ and bXYZ tags swapped."""
    import fpdf

    data = bytearray((Path(fpdf.__file__).parent / "data/color_profiles/sRGB2014.icc").read_bytes())
    entries = {}
    for i in range(struct.unpack(">I", data[128:132])[0]):
        signature, offset, size = struct.unpack(">4sII", data[132 + 12 * i:144 + 12 * i])
        entries[signature] = (132 + 12 * i, offset, size)
    (red_at, *red), (blue_at, *blue) = entries[b"rXYZ"], entries[b"bXYZ"]
    struct.pack_into(">4sII", data, red_at, b"rXYZ", *blue)
    struct.pack_into(">4sII", data, blue_at, b"bXYZ", *red)
    return bytes(data)


def test_embedded_colour_profile_is_converted(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    astronaut().save(tmp_path / "srgb.png", icc_profile=srgb)
    astronaut().save(tmp_path / "bad.png", icc_profile=b"not a profile")
    astronaut().save(tmp_path / "swapped.png", icc_profile=_swapped_profile())
    for name in ("srgb.png", "bad.png"):  # nothing to convert, or a profile that can't be used
        image, _ = photos.open_photo(tmp_path / name, LIMIT)
        assert _diff(image, astronaut()) < 2
    image, _ = photos.open_photo(tmp_path / "swapped.png", LIMIT)
    red, green, blue = astronaut().split()
    assert _diff(image, Image.merge("RGB", (blue, green, red))) < 3


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
@pytest.mark.parametrize("orientation, corner", [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right")])
def test_exif_orientation_is_applied(tmp_path, fmt, orientation, corner):
    stored = Image.new("RGB", (640, 520), "white")
    stored.paste((255, 0, 0), (0, 0, 80, 80))  # a red square at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = orientation
    photos._formats()
    stored.save(tmp_path / "turned", format=fmt, exif=exif.tobytes(), quality=95)
    image, _ = photos.open_photo(tmp_path / "turned", LIMIT)
    assert image.size == ((640, 520) if orientation == 3 else (520, 640))
    w, h = image.size
    point = {"top-right": (w - 20, 20), "bottom-left": (20, h - 20), "bottom-right": (w - 20, h - 20)}
    red, green, _ = image.getpixel(point[corner])
    assert red > 200 and green < 60


def test_no_metadata_leaves_intake(tmp_path, settings):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 12.5)  # GPS latitude
    astronaut().save(tmp_path / "gps.jpg", exif=exif.tobytes(), comment=b"Home, 12 Elm St",
                     xmp=b"<x:xmpmeta>Home</x:xmpmeta>")
    image, _ = photos.open_photo(tmp_path / "gps.jpg", LIMIT)
    [crop] = photos.review_photos(dataclasses.replace(settings, min_photos=1), "woman",
                                  [tmp_path / "gps.jpg"]).crops
    assert image.info == {} and crop.image.info == {} and not crop.image.getexif()


def test_a_damaged_exif_tag_doesnt_refuse_the_photo(tmp_path):
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "PhoneMaker"
    raw = exif.tobytes()
    broken = raw.replace(b"\x01\x0f\x00\x02", b"\x01\x53\x00\x02")  # SampleFormat as text
    assert broken != raw
    Image.new("RGB", (640, 520), "white").save(tmp_path / "odd.jpg", exif=broken)
    image, _ = photos.open_photo(tmp_path / "odd.jpg", LIMIT)
    assert image.size == (520, 640)  # still turned upright


def test_open_photo_refusals(tmp_path):
    (tmp_path / "notes.jpg").write_text("shopping list: milk, eggs")
    (tmp_path / "doc.png").write_bytes(b"%PDF-1.7\n" + b"0" * 2000)
    (tmp_path / "live.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + bytes(2000))
    (tmp_path / "BMW.txt").write_text("BMW service on Monday, " * 40)
    (tmp_path / "cut.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    buffer = io.BytesIO()
    astronaut().save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    (tmp_path / "cut.png").write_bytes(_png_header(600, 600)[:40])
    (tmp_path / "bomb.png").write_bytes(_png_header(20000, 20000))  # past Pillow's own limit
    (tmp_path / "big.png").write_bytes(_png_header(9000, 9000))  # past ours (60 megapixels)
    noise_png(tmp_path / "heavy.png", (700, 700))
    expected = {"notes.jpg": "not_an_image", "doc.png": "not_an_image", "live.mov": "not_an_image",
                "BMW.txt": "not_an_image", "cut.heic": "damaged", "cut.jpg": "damaged",
                "cut.png": "damaged", "bomb.png": "too_large", "big.png": "too_large",
                "heavy.png": "too_large", "missing.jpg": "unreadable"}
    for name, reason in expected.items():
        with pytest.raises(photos.PhotoError) as caught:
            photos.open_photo(tmp_path / name, 2**20 if name == "heavy.png" else LIMIT)
        assert caught.value.reason == reason, name
        assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the broken headers
def test_damaged_files_of_every_format_are_a_verdict_never_a_crash(tmp_path):
    """Random cuts and flipped bytes in real files: each opens, or is a PhotoError."""
    photos._formats()
    rng = random.Random(0)
    originals = []
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "HEIF"):
        buffer = io.BytesIO()
        astronaut().resize((96, 96)).save(buffer, format=fmt)
        originals.append(buffer.getvalue())
    verdicts = set()
    for n in range(350):
        data = bytearray(rng.choice(originals))
        if n % 3 == 0:
            data = data[:rng.randrange(1, len(data))]
        for _ in range(rng.randrange(0 if n % 3 == 0 else 1, 8)):
            data[rng.randrange(min(len(data), 300))] = rng.randrange(256)
        (tmp_path / f"{n}.img").write_bytes(bytes(data))
        try:
            image, _ = photos.open_photo(tmp_path / f"{n}.img", LIMIT)
            verdicts.add(image.mode)
        except photos.PhotoError as err:
            verdicts.add(err.reason)
            assert str(err).startswith(f"{n}.img: ")
    assert {"RGB", "damaged", "not_an_image"} <= verdicts <= {"RGB", "damaged", "not_an_image",
                                                              "too_large"}


def test_rotated_photos_crop_the_upright_picture(tmp_path, settings):
    """The face square and SDXL's size and crop conditioning are in the upright photo."""
    upright = on_canvas(astronaut(), (760, 600), (200, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise from how it is stored
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "turned.jpg", quality=95,
                                                      exif=exif.tobytes())
    [crop] = photos.review_photos(dataclasses.replace(settings, min_photos=1), "woman",
                                  [tmp_path / "turned.jpg"]).crops
    face = faces.find_faces(upright)[0].box
    assert crop.original_size == (600, 760)  # (height, width) upright
    assert crop.crop_box == photos.face_square(face, upright.size)
    assert _diff(crop.image, upright.crop(crop.crop_box).resize(crop.image.size)) < 4


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One mixed upload (every verdict), reviewed once for a woman; returns (review, names)."""
    folder = tmp_path_factory.mktemp("batch")
    photos._formats()
    variants = face_variants()
    front = variants["front"]
    front.save(folder / "front.jpg", quality=92)
    files = {
        "front.jpg": None,
        "notes.jpg": lambda p: p.write_text("not a photo"),
        "cut.jpg": lambda p: p.write_bytes((folder / "front.jpg").read_bytes()[:9000]),
        "small.png": lambda p: front.resize((400, 300)).save(p),
        "dark.jpg": lambda p: ImageEnhance.Brightness(front).enhance(0.2).save(p),
        "bright.jpg": lambda p: Image.eval(ImageEnhance.Brightness(front).enhance(0.2),
                                           lambda v: v + 205).save(p),
        "blurry.jpg": lambda p: variants["tilted"].filter(ImageFilter.GaussianBlur(4)).save(p),
        "coffee.jpg": lambda p: _coffee().save(p),
        "mirrored.heic": lambda p: variants["mirrored"].save(p, format="HEIF", quality=90),
        "tilted.webp": lambda p: variants["tilted"].save(p, quality=92),
        "resaved.png": lambda p: ImageEnhance.Brightness(front).enhance(0.8).save(p),
        "copy.jpg": lambda p: shutil.copyfile(folder / "front.jpg", p),
        "hopper.jpg": lambda p: grace_hopper().save(p),
        "wide.tif": lambda p: variants["wide"].save(p, compression="tiff_lzw"),
        "group.jpg": lambda p: _group().save(p, quality=92),
        "camera.png": lambda p: _camera().save(p),
        "missing.jpg": lambda p: None,
        "heavy.png": lambda p: noise_png(p, (700, 700)),
        "relit.jpg": lambda p: variants["relit"].save(p, quality=92),
    }
    for name, make in files.items():
        if make is not None:
            make(folder / name)
    settings = Settings(data_dir=folder / "data", resolution=64, max_photos=5, max_upload_mb=1)
    seen = []
    review = photos.review_photos(settings, "woman", [folder / n for n in files],
                                  on_progress=seen.append)
    return review, list(files), seen


def _coffee() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee()).resize((768, 512))


def _camera() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.camera())  # grayscale; a man whose face is small in the frame


def _group() -> Image.Image:
    """Two faces: the astronaut, and a smaller copy of her beside."""
    canvas = on_canvas(astronaut(), (900, 560), (0, 24))
    canvas.paste(ImageOps.mirror(astronaut()).resize((330, 330)), (560, 150))
    return canvas


def test_mixed_batch_gives_every_photo_its_own_verdict(batch):
    review, names, _ = batch
    verdicts = {r.source: (r.accepted, r.reason) for r in review.reports}
    assert [r.index for r in review.reports] == list(range(1, len(names) + 1))
    assert verdicts == {
        "front.jpg": (True, ""), "notes.jpg": (False, "not_an_image"),
        "cut.jpg": (False, "damaged"), "small.png": (False, "too_small"),
        "dark.jpg": (False, "too_dark"), "bright.jpg": (False, "too_bright"),
        "blurry.jpg": (False, "blurry"), "coffee.jpg": (False, "no_face"),
        "mirrored.heic": (True, ""), "tilted.webp": (True, ""),
        "resaved.png": (False, "duplicate"), "copy.jpg": (False, "duplicate"),
        "hopper.jpg": (False, "someone_else"), "wide.tif": (True, ""), "group.jpg": (True, ""),
        "camera.png": (False, "too_small"), "missing.jpg": (False, "unreadable"),
        "heavy.png": (False, "too_large"), "relit.jpg": (False, "over_limit"),
    }
    assert set(photos.REASONS) == {reason for _, reason in verdicts.values()} - {""}


def test_reports_speak_to_a_parent(batch):
    review, _, _ = batch
    lines = {r.source: r.describe() for r in review.reports}
    assert lines["front.jpg"] == "photo 1 (front.jpg): accepted"
    assert lines["hopper.jpg"].startswith("photo 13 (hopper.jpg): may show someone else")
    assert "so it was left out" in lines["hopper.jpg"]  # it is not used: no "leave it out"
    assert "no face found" in lines["coffee.jpg"] and "clearly visible" in lines["coffee.jpg"]
    assert "same file as photo 1" in lines["copy.jpg"]
    assert "nearly the same as photo 1" in lines["resaved.png"]
    assert "512 px" in lines["small.png"] and "face is too small" in lines["camera.png"]
    assert "limit is 1 MB" in lines["heavy.png"] and "at most 5 photos" in lines["relit.jpg"]
    group = next(r for r in review.reports if r.source == "group.jpg")
    assert group.warnings == ("2 faces found; the largest was used (photos of the woman alone "
                              "work best)",)


def test_crops_are_square_around_the_largest_face(batch):
    review, _, seen = batch
    assert [c.source for c in review.crops] == ["front.jpg", "mirrored.heic", "tilted.webp",
                                                "wide.tif", "group.jpg"]
    assert [c.format for c in review.crops] == ["JPEG", "HEIF", "WEBP", "TIFF", "JPEG"]
    for crop in review.crops:
        left, top, right, bottom = crop.crop_box
        assert crop.image.size == (64, 64) and crop.image.mode == "RGB"
        assert right - left == bottom - top >= photos.MIN_CROP
        assert 0 <= left and 0 <= top and right <= crop.original_size[1] and bottom <= crop.original_size[0]
    front = review.crops[0]
    assert front.original_size == (512, 512)
    left, top, right, _ = front.crop_box  # the astronaut's face is at about x 170-265, y 70-165
    assert left < 170 and right > 265 and top < 70
    group = review.crops[-1]
    assert group.crop_box[2] < 560  # the larger face (left), not the copy beside it
    assert [p.done for p in seen] == list(range(20)) and seen[-1].total == 19


def test_pets_need_no_face_and_get_a_note(settings, tmp_path):
    _coffee().save(tmp_path / "rex.jpg")
    tall = np.full((900, 600, 3), 235, np.uint8)
    tall[600:850, 150:450] = np.random.default_rng(0).integers(0, 255, (250, 300, 3))
    Image.fromarray(tall).save(tmp_path / "rex_tall.png")
    review = photos.review_photos(settings, "golden retriever", [tmp_path / "rex.jpg",
                                                                tmp_path / "rex_tall.png"])
    assert [r.accepted for r in review.reports] == [True, True]
    assert "no face needed for a golden retriever" in review.reports[0].warnings[0]
    assert review.crops[0].crop_box[2] - review.crops[0].crop_box[0] == 512
    left, top, right, bottom = review.crops[1].crop_box
    assert (left, right) == (0, 600) and top <= 600 and bottom >= 850  # holds the busy part


@pytest.mark.parametrize("kind, person", [
    ("girl", True), ("Little Girl", True), ("grandma", True), ("old man", True),
    ("Mama", True), ("stepdad", True), ("Oma", True), ("twin boys", True), ("wife", True),
    ("dog", False), ("cat", False), ("golden retriever", False), ("teddy bear", False),
    ("snowman", False), ("bunnies", False),
])
def test_is_person(kind, person):
    assert photos.is_person(kind) is person


def test_face_square_stays_inside_the_photo():
    assert photos.face_square((100, 100, 200, 200), (1000, 800)) == (0, 24, 300, 324)
    assert photos.face_square((900, 700, 1000, 800), (1000, 800)) == (700, 500, 1000, 800)
    assert photos.face_square((0, 0, 400, 400), (600, 500)) == (0, 0, 500, 500)


def test_blur_score_follows_the_published_metric():
    from skimage.measure import blur_effect

    gray = np.asarray(astronaut().convert("L"))
    scores = []
    for radius in (0, 1, 2, 4):
        image = Image.fromarray(gray).filter(ImageFilter.GaussianBlur(radius)) if radius else Image.fromarray(gray)
        ours, reference = quality.blur_score(np.asarray(image)), blur_effect(np.asarray(image) / 255)
        assert abs(ours - reference) < 0.12  # scikit-image uses Sobel, the paper plain differences
        scores.append(ours)
    assert scores == sorted(scores) and scores[0] < 0.4 < photos.BLURRY < scores[-1]
    assert quality.blur_score(np.zeros((50, 50))) == 1.0


def test_perceptual_hash_sees_copies_not_different_photos():
    variants = face_variants()
    front = quality.dhash(variants["front"])
    for copy in (variants["front"].resize((300, 300)), ImageEnhance.Brightness(variants["front"]).enhance(0.7)):
        assert quality.hamming(front, quality.dhash(copy)) <= photos.NEAR_DUPLICATE
    hashes = [quality.dhash(image) for image in variants.values()]
    assert min(quality.hamming(a, b) for i, a in enumerate(hashes)
               for b in hashes[i + 1:]) > photos.NEAR_DUPLICATE


def test_dlib_models_are_found_without_importing_their_package():
    for name in ("mmod_human_face_detector.dat", "shape_predictor_5_face_landmarks.dat",
                 "dlib_face_recognition_resnet_model_v1.dat"):
        assert faces.model_path(name).stat().st_size > 100_000
    assert "face_recognition_models" not in sys.modules


def test_importing_the_intake_loads_neither_dlib_nor_torch():
    from conftest import heavy_modules_after

    assert heavy_modules_after("pipeline.intake.photos, pipeline.characters") == []


def test_faces_small_ones_too_and_identity():
    front = astronaut()
    [face] = faces.find_faces(front)
    assert face.box[0] < 200 < face.box[2] and face.box[1] < 120 < face.box[3]
    small = on_canvas(front.resize((256, 256)), (1400, 1000), (700, 400))  # face ~50 px of 1400
    [found] = faces.find_faces(small)
    assert 700 < found.box[0] < found.box[2] < 956
    same = faces.describe_face(ImageOps.mirror(front), faces.find_faces(ImageOps.mirror(front))[0])
    mine = faces.describe_face(front, face)
    other_photo = grace_hopper()
    other = faces.describe_face(other_photo, faces.find_faces(other_photo)[0])
    assert np.linalg.norm(mine - same) < 0.4 < faces.SAME_PERSON < np.linalg.norm(mine - other)
    assert faces.find_faces(Image.new("RGB", (600, 600), "gray")) == []


def test_identity_outliers_needs_a_majority():
    rng = np.random.default_rng(0)
    person = rng.normal(size=128)
    alike = [person + rng.normal(scale=0.02, size=128) for _ in range(4)]
    stranger = person + 1.0
    assert faces.identity_outliers(alike + [stranger]) == [4]
    assert faces.identity_outliers(alike) == []
    assert faces.identity_outliers([alike[0], stranger]) == []  # two: neither is the odd one
