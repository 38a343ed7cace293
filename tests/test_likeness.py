"""Likeness scores on real faces: found or not, assignment, look-alikes, copies, pets, ranking.

Pages are composites of the test photos (photo_fixtures.py): the astronaut is Mia, Grace Hopper
is Gran. Mia's identity is made from three photos of the astronaut; her pages show the mirrored
photo, a photo of her that is not among them. dlib costs about a second a photo here, so the
identities are made once per module and the pages are pasted at known face positions.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from photo_fixtures import astronaut, face_variants, grace_hopper
from PIL import Image, ImageOps

from pipeline import likeness
from pipeline.intake import faces
from pipeline.likeness import (CharacterScore, Identity, PageScore, book_consistency, consistency,
                               identity_from_images, needs_redraw, rank, score_faces, score_page)

ASTRONAUT_FACE = (168, 69, 263, 164)  # faces.find_faces(astronaut()), in her 512x512 photo
HOPPER_FACE = (166, 137, 357, 329)  # faces.find_faces(grace_hopper()), in her 512x600 photo


def mirrored(photo: Image.Image, box: tuple) -> tuple[Image.Image, tuple]:
    left, top, right, bottom = box
    return ImageOps.mirror(photo), (photo.width - right, top, photo.width - left, bottom)


def new_photo_of_mia() -> tuple[Image.Image, tuple]:
    return mirrored(astronaut(), ASTRONAUT_FACE)


def gran_photo() -> tuple[Image.Image, tuple]:
    return grace_hopper(), HOPPER_FACE


def page(*people, size: int = 1024) -> Image.Image:
    """A page with each ((photo, face box), fraction of the side, face centre) pasted on it."""
    canvas = Image.new("RGB", (size, size), (222, 200, 160))
    for (photo, (left, top, right, bottom)), fraction, (x, y) in people:
        zoom = fraction * size / max(right - left, bottom - top)
        small = photo.resize((round(photo.width * zoom), round(photo.height * zoom)),
                             Image.Resampling.LANCZOS)
        canvas.paste(small, (round(x - (left + right) / 2 * zoom),
                             round(y - (top + bottom) / 2 * zoom)))
    return canvas


def centre(score: CharacterScore) -> tuple[float, float]:
    left, top, right, bottom = score.box
    return (left + right) / 2, (top + bottom) / 2


def point(x: float, y: float) -> tuple[float, ...]:
    """A made-up descriptor: distances between two of them are those of (x, y) in a plane."""
    return (0.1,) * 126 + (x, y)


@pytest.fixture(scope="module")
def mia() -> Identity:
    variants = face_variants()
    no_face = Image.new("RGB", (64, 64), "gray")  # skipped
    return identity_from_images([variants["front"], no_face, variants["tilted"], variants["wide"]])


@pytest.fixture(scope="module")
def gran() -> Identity:
    return identity_from_images([grace_hopper()])


def test_identity_skips_photos_without_a_face_and_round_trips_through_json(mia):
    assert len(mia.descriptors) == 3 and not mia.empty
    assert Identity.from_json(json.loads(json.dumps(mia.to_json()))) == mia
    assert Identity().empty and Identity.from_json(Identity().to_json()).empty
    with pytest.raises(ValueError, match="another|describe the character's photos again"):
        Identity.from_json({"model": "another_model", "descriptors": []})
    with pytest.raises(ValueError, match="128 finite numbers"):
        Identity(((0.1,) * 5,))


def test_a_new_photo_of_mia_is_a_close_likeness(mia):
    picture = page((new_photo_of_mia(), 0.2, (400, 450)))
    score = score_page(picture, [("Mia", mia)])
    assert score_page(picture, [("Mia", mia)]) == score  # deterministic
    found = score.character("Mia")
    assert found.found and found.likeness >= likeness.CLOSE and found.distance < 0.3
    assert not found.copied and found.looks_like is None and found.scored
    assert abs(centre(found)[0] - 400) < 40 and abs(centre(found)[1] - 450) < 40
    assert found.describe().startswith("Mia: a close likeness (")
    assert score.weakest == found.likeness == score.mean and score.faces == 1
    assert not needs_redraw(score, likeness.CLOSE)


def test_a_stranger_is_not_mia(mia):
    score = score_page(page((gran_photo(), 0.2, (500, 500))), [("Mia", mia)])
    stranger = score.character("Mia")
    assert not stranger.found and stranger.likeness is None
    assert stranger.distance > likeness.NOT_THIS_PERSON  # measured: 0.66-0.69
    assert stranger.box is not None  # the face she was given is still reported
    assert stranger.describe() == "Mia: not found on this picture"
    assert score.weakest == 0 and needs_redraw(score)


@pytest.mark.parametrize("mia_left", [True, False], ids=["mia-left", "mia-right"])
def test_each_character_gets_their_own_face_whatever_the_order(mia, gran, mia_left):
    left, right = (300, 500), (740, 520)
    picture = page((new_photo_of_mia(), 0.15, left if mia_left else right),
                   (gran_photo(), 0.12, right if mia_left else left))
    for cast in ([("Mia", mia), ("Gran", gran)], [("Gran", gran), ("Mia", mia)]):
        score = score_page(picture, cast)
        assert [c.name for c in score.characters] == [name for name, _ in cast]
        mia_x, gran_x = centre(score.character("Mia"))[0], centre(score.character("Gran"))[0]
        assert (mia_x < gran_x) == mia_left
        assert all(c.found and c.likeness >= likeness.CLOSE and c.looks_like is None
                   for c in score.characters)


def test_the_assignment_is_the_best_overall_not_greedy():
    # Mia's nearest face is face 1 (0.30), but taking it would leave Gran face 2 (0.83, not
    # her); Mia with face 2 (0.38) and Gran with face 1 (0.35) is better overall.
    cast = [("Mia", Identity((point(0, 0.3),))), ("Gran", Identity((point(-0.35, 0),)))]
    found = [((0, 0, 10, 10), point(0, 0)), ((20, 0, 30, 10), point(0.35, 0.45))]
    score = score_faces(found, cast)
    assert score.character("Mia").box == (20, 0, 30, 10)
    assert score.character("Gran").box == (0, 0, 10, 10)
    assert all(c.found for c in score.characters)
    # more characters than faces: the one left without a face is not found
    score = score_faces(found[:1], cast + [("Tom", Identity((point(5, 5),)))])
    assert [c.found for c in score.characters] == [True, False, False]  # Mia is nearer
    assert score.character("Tom").box is None and score.character("Tom").distance is None
    with pytest.raises(ValueError, match="twice"):
        score_faces(found, [("Mia", None), ("Mia", None)])


def test_a_training_photo_pasted_on_the_page_is_copied(mia):
    front = (face_variants()["front"], ASTRONAUT_FACE)  # one of Mia's photos
    copy = score_page(page((front, 0.25, (500, 400))), [("Mia", mia)]).character("Mia")
    assert copy.found and copy.copied and copy.distance < likeness.COPIED
    assert copy.describe() == "Mia: looks copied from a photo"


def test_pets_and_people_without_a_face_model_are_not_scored(mia):
    picture = page((new_photo_of_mia(), 0.2, (400, 450)))
    cast = [("Rex", None), ("Mia", mia), ("Bob", Identity())]
    score = score_page(picture, cast)
    rex, found, bob = score.characters
    assert (rex.scored, rex.found, rex.likeness, rex.distance, rex.box) == (False, False, None,
                                                                              None, None)
    assert rex.describe() == "Rex: not scored (pets and objects have no face model)"
    assert bob.describe() == "Bob: not scored (no face was found in their photos)"
    assert score.weakest == found.likeness and not needs_redraw(score, likeness.CLOSE)
    entry = score.to_json()["characters"][0]
    assert set(entry) == {"name", "found", "likeness", "looks_like", "copied", "scored",
                          "distance", "box"}
    assert entry["likeness"] is None and entry["scored"] is False
    assert json.loads(json.dumps(score.to_json()))["characters"][1]["box"] == list(found.box)
    full = json.loads(json.dumps(score.to_json(full=True)))
    assert PageScore.from_json(full) == score and len(full["characters"][1]["descriptor"]) == 128
    nobody = score_page(picture, [("Rex", None)])  # no face model: no face is even looked for
    assert (nobody.weakest, nobody.mean, nobody.faces) == (None, None, 0)
    assert not needs_redraw(nobody)


def test_a_face_nearer_to_another_character_looks_like_them(mia, gran):
    photo, box = gran_photo()
    picture = page(((photo, box), 0.15, (300, 500)), (mirrored(photo, box), 0.15, (740, 500)))
    score = score_page(picture, [("Mia", mia), ("Gran", gran)])
    mia_score, gran_score = score.characters
    assert gran_score.found and gran_score.looks_like is None
    assert mia_score.looks_like == "Gran" and not mia_score.found
    assert mia_score.describe() == "Mia: looks like Gran here"
    assert needs_redraw(score, 0)


def test_ranking_picks_the_picture_that_shows_the_character(mia):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), np.uint8))
    candidates = [noise, page((gran_photo(), 0.2, (500, 500))),
                  page((new_photo_of_mia(), 0.1, (600, 300)))]
    scores = [score_page(picture, [("Mia", mia), ("Rex", None)]) for picture in candidates]
    assert rank(scores) == [2, 0, 1]  # the two without Mia tie at 0 and keep their order
    assert [needs_redraw(s) for s in scores] == [True, True, False]


def test_ranking_orders_by_the_weakest_then_the_mean():
    def scored(*values):
        return PageScore(tuple(CharacterScore(f"c{i}", True, found=v is not None, likeness=v)
                               for i, v in enumerate(values)))

    scores = [scored(60, 90), scored(70, 70), scored(None, 100), scored(60, 95)]
    assert [s.weakest for s in scores] == [60, 70, 0, 60] and scores[2].mean == 50
    assert rank(scores) == [1, 3, 0, 2]
    unscored = [PageScore((CharacterScore("Rex", False),))] * 3
    assert rank(unscored) == [0, 1, 2]
    assert needs_redraw(scored(60, 90), 61) and not needs_redraw(scored(60, 90), 60)
    looks = PageScore((CharacterScore("Mia", True, True, 90, 0.3, looks_like="Gran"),))
    assert needs_redraw(looks, 0)


def test_small_faces_are_found_beside_a_big_one(mia, gran):
    picture = page((new_photo_of_mia(), 0.25, (300, 400)), (gran_photo(), 0.055, (800, 760)))
    score = score_page(picture, [("Gran", gran), ("Mia", mia)])
    small, big = score.characters
    assert small.found and big.found and score.faces == 2
    assert 40 < small.box[2] - small.box[0] < 80  # about 56 px of 1024
    assert abs(centre(small)[0] - 800) < 30 and abs(centre(big)[0] - 300) < 60


def test_likeness_scale_and_thresholds():
    assert likeness.likeness(0.0) == likeness.likeness(likeness.FULL_LIKENESS) == 100
    assert likeness.likeness(likeness.NO_LIKENESS) == likeness.likeness(2.0) == 0
    assert likeness.likeness(0.55) == 50
    assert (likeness.COPIED < likeness.FULL_LIKENESS < likeness.NOT_THIS_PERSON
            < likeness.NO_LIKENESS)
    assert likeness.likeness(likeness.NOT_THIS_PERSON) < likeness.FAIR < likeness.CLOSE


def test_consistency_across_a_book():
    assert consistency([point(0, 0), None, point(0.2, 0), point(0.2, 0)]) == 100  # mean 0.13
    assert consistency([point(0, 0), point(0.75, 0)]) == 0
    assert consistency([point(0, 0), None]) is None and consistency([]) is None

    def page_with(at):
        if at is None:
            return PageScore((CharacterScore("Mia", True), CharacterScore("Rex", False)))
        return PageScore((CharacterScore("Mia", True, True, 90, descriptor=point(at, 0)),
                          CharacterScore("Rex", False)))

    book = [page_with(0.0), page_with(None), page_with(0.55)]
    assert book_consistency(book) == {"Mia": likeness.likeness(0.55)}


def test_importing_likeness_loads_neither_torch_nor_dlib():
    from conftest import heavy_modules_after

    assert heavy_modules_after("pipeline.likeness") == []


def test_find_all_faces_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="min_fraction"):
        faces.find_all_faces(Image.new("RGB", (10, 10)), 0)
