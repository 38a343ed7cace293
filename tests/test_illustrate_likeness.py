"""Every drawn page checked against the real faces (illustrate.py with likeness.py): the best
candidate kept, weak pages redrawn within the rule, a parent's choice never overridden, pets
not scored. The renderer is faked to return real photos (a picture from the tiny model is
noise), so the scoring sees real faces; the adapters are the tiny model's real ones."""

import numpy as np
import pytest
from PIL import Image

from photo_fixtures import face_variants, grace_hopper, on_canvas
from pipeline import illustrate
from pipeline.actions import likeness as likeness_actions
from pipeline.actions.books import book_json, new_book
from pipeline.actions.drawing import choose_picture
from pipeline.book import BookStore
from pipeline.illustrate import IllustrateConfig, illustrate_book, regenerate_page
from pipeline.likeness import identity_from_images, save_identity
from pipeline.render import Rendered

ONE_PASS = dict(width=64, height=64, steps=2, face_pass=False)


@pytest.fixture(scope="module")
def astronaut_identity():
    return identity_from_images(list(face_variants().values())[:3])


@pytest.fixture
def family(cast, astronaut_identity):
    """Alice's Mia (a girl: the astronaut's face) and Rex (a dog), with tiny real adapters."""
    save_identity(cast, cast.get("Mia"), astronaut_identity)
    return cast


def _page_of(face: Image.Image) -> Image.Image:
    return on_canvas(face.resize((200, 200)), (320, 320), (60, 50), (120, 160, 200))


NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8))
MIA = _page_of(face_variants()["mirrored"])  # a new photo of her, not one of her photos
STRANGER = _page_of(grace_hopper())


def _fake_render(monkeypatch, pictures):
    """render() returning these pictures in turn for pages with characters (one list per
    call; the last again when they run out) and noise for pages with nobody; records the
    calls for pages with characters."""
    calls = []

    def render(settings, job, on_step=None):
        if not job.adapters:
            return [Rendered(NOISE) for _ in job.seeds]
        batch = pictures[min(len(calls), len(pictures) - 1)]
        calls.append(job)
        return [Rendered(image) for image in batch[:len(job.seeds)]]

    monkeypatch.setattr(illustrate, "render", render)
    return calls


def test_the_candidate_that_shows_the_character_becomes_the_page(settings, family, monkeypatch):
    _fake_render(monkeypatch, [[NOISE, MIA, STRANGER]])
    book = new_book(settings, "alice", "Mia", "Mia waves.", seed=1)
    book = illustrate_book(settings, "alice", book.id,
                           IllustrateConfig(candidates=3, redraw_tries=0, **ONE_PASS))
    page = book.page(1)
    assert page.image == page.candidates[1].file and not page.chosen_by_parent
    shown = book_json(settings, "alice", book)["pages"][0]
    mia = shown["candidates"][1]["score"]["characters"][0]
    assert mia["found"] and mia["likeness"] >= 70 and mia["name"] == "Mia"
    assert shown["likeness"] == [f"Mia: a close likeness ({mia['likeness']}/100)"]
    assert shown["candidates"][0]["score"]["characters"][0]["found"] is False
    assert "descriptor" not in str(shown)  # face descriptors stay on the server
    assert shown["candidates"][2]["score"]["describe"] == "Mia: not found on this picture"


def test_a_weak_page_is_drawn_again_until_it_is_good_or_the_tries_run_out(settings, family,
                                                                          monkeypatch):
    calls = _fake_render(monkeypatch, [[NOISE], [STRANGER], [MIA]])
    messages = []
    book = new_book(settings, "alice", "Mia", "Mia waves.\n\nThe sea.", seed=1)
    book = illustrate_book(settings, "alice", book.id,
                           IllustrateConfig(redraw_tries=4, **ONE_PASS),
                           on_progress=lambda p: messages.append(p.message))
    assert len(calls) == 3  # stopped at the good one
    page = book.page(1)
    assert len(page.candidates) == 3 and page.image == page.candidates[2].file
    assert [job.seeds[0] for job in calls] == [
        illustrate.page_seed(1, 1) + n for n in range(3)]
    assert any("page 1: Mia: not found on this picture; drawing it again (try 1 of 4)" in m
               for m in messages)
    assert not book.page(2).candidates[0].score  # nobody on page 2: nothing to score

    calls = _fake_render(monkeypatch, [[NOISE]])
    book = new_book(settings, "alice", "Mia again", "Mia waves.", seed=2)
    book = illustrate_book(settings, "alice", book.id, IllustrateConfig(redraw_tries=2, **ONE_PASS))
    assert len(calls) == 3 and len(book.page(1).candidates) == 3  # 1 + 2 tries, then it stops
    assert book.page(1).image == book.page(1).candidates[0].file  # all as weak: the first


def test_a_parents_choice_survives_a_rescore(settings, family, monkeypatch):
    _fake_render(monkeypatch, [[MIA, NOISE], [NOISE, MIA]])
    book = new_book(settings, "alice", "Mia", "Mia waves.\n\nMia sleeps.", seed=1)
    book = illustrate_book(settings, "alice", book.id,
                           IllustrateConfig(candidates=2, redraw_tries=0, **ONE_PASS))
    assert [p.image for p in book.pages] == [book.page(1).candidates[0].file,
                                             book.page(2).candidates[1].file]
    choose_picture(settings, "alice", book.id, 1, 2)  # the parent prefers the noise
    _unscored(BookStore(settings, "alice"), book.id, 2)
    book = likeness_actions.rescore(settings, "alice", book.id)
    assert book.page(1).image == book.page(1).candidates[1].file and book.page(1).chosen_by_parent
    assert book.page(2).image == book.page(2).candidates[1].file  # scored again: the best
    assert book.page(2).candidates[1].score is not None


def _unscored(store, book_id, number):
    """Forget a page's scores and show its first picture, as a book drawn before scoring."""
    from dataclasses import replace

    def forget(book):
        pages = list(book.pages)
        page = pages[number - 1]
        pages[number - 1] = replace(page, image=page.candidates[0].file, candidates=tuple(
            replace(c, score=None) for c in page.candidates))
        return replace(book, pages=tuple(pages))

    store.update(book_id, forget)


def test_a_pet_is_not_scored_and_a_redraw_scores_its_new_pictures(settings, family,
                                                                   monkeypatch):
    calls = _fake_render(monkeypatch, [[MIA], [NOISE, MIA]])
    book = new_book(settings, "alice", "Rex", "Mia and Rex play.", seed=3)
    book = illustrate_book(settings, "alice", book.id, IllustrateConfig(**ONE_PASS))
    score = book_json(settings, "alice", book)["pages"][0]["likeness"]
    assert score[1] == "Rex: not scored (pets and objects have no face model)"
    book = regenerate_page(settings, "alice", book.id, 1,
                           IllustrateConfig(candidates=2, **ONE_PASS))
    assert len(calls) == 2 and len(book.page(1).candidates) == 3
    assert book.page(1).image == book.page(1).candidates[2].file  # the better of the new two


def test_cli_scores_any_pictures_as_pages_with_the_characters_given(settings, family, tmp_path,
                                                                     capsys):
    import json

    from pipeline.characters import Crop
    from pipeline.cli import main

    gran = family.create("Gran", "grandma", "", "tvgran",
                         [(Image.new("RGB", (64, 64)), Crop("", (64, 64), (0, 0, 64, 64)))])
    save_identity(family, gran, identity_from_images([grace_hopper()]))
    both = on_canvas(face_variants()["mirrored"].resize((300, 300)), (1024, 560), (40, 120))
    both.paste(grace_hopper().resize((300, 350)), (660, 100))
    both.save(tmp_path / "both.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    common = ["--data-dir", str(settings.data_dir), "--user", "alice"]
    for order in (["Gran", "Mia"], ["Mia", "Gran"]):
        assert main(["likeness", "--json", "--characters", ",".join(order),
                     str(tmp_path / "both.png"), *common]) == 0
        [scored] = json.loads(capsys.readouterr().out)
        assert scored["image"] == "both.png"
        assert [c["name"] for c in scored["characters"]] == order
        by_name = {c["name"]: c for c in scored["characters"]}
        assert by_name["Mia"]["box"][0] < 512 < by_name["Gran"]["box"][0]  # each her own face
        assert all(c["found"] and c["scored"] and c["looks_like"] is None
                   for c in scored["characters"])
        assert by_name["Gran"]["copied"]  # her own photo, pasted: not a drawing
    assert main(["likeness", "--characters", "Mia,Rex", str(tmp_path / "both.png"),
                 *common]) == 0
    assert "Rex: not scored" in capsys.readouterr().out
    assert main(["likeness", "--characters", "Mia", str(tmp_path / "broken.png"), *common]) == 1
    assert "broken.png" in capsys.readouterr().err
