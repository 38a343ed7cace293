"""The second pass (pipeline/compose.py, through render.py and illustrate.py) on the tiny model:
one redraw per character with exactly its own adapter, nothing outside the redrawn squares
changed, the layout's order, faces placed by position, and failures that keep what was drawn."""
import json

import numpy as np
import pytest
from PIL import Image

from photo_fixtures import astronaut, grace_hopper, on_canvas
from pipeline import cli, compose, illustrate, models
from pipeline.actions.books import new_book
from pipeline.actions.drawing import set_order
from pipeline.adapters import AdapterRef
from pipeline.book import BookStore
from pipeline.compose import CharacterPass, PassOptions, place_characters, plan_layout
from pipeline.illustrate import IllustrateConfig, illustrate_book
from pipeline.intake import faces
from pipeline.render import RenderJob, render
from pipeline.styles import get_style

pytestmark = pytest.mark.usefixtures("one_thread")
TWO = IllustrateConfig(width=64, height=64, steps=2, face_pass=True, redraw_tries=0)
ONE_PASS = IllustrateConfig(width=64, height=64, steps=2, face_pass=False, redraw_tries=0)


def _pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _spy_inpainting(monkeypatch, pipe):
    """Record the active adapters at each second-pass call."""
    calls = []
    real = compose._inpainter

    def inpainter(pipe_):
        inpaint = real(pipe_)

        class Spy:
            def __call__(self, **kwargs):
                calls.append(sorted(pipe.get_active_adapters()))
                return inpaint(**kwargs)

        return Spy()

    monkeypatch.setattr(compose, "_inpainter", inpainter)
    return calls


def test_each_character_is_redrawn_once_with_only_its_adapter_and_nothing_else_changes(
        settings, cast, monkeypatch):
    pipe = models.load_pipeline(settings)
    calls = _spy_inpainting(monkeypatch, pipe)
    refs = {name: AdapterRef(f"t_{name}", str(cast.adapter_dir(cast.get(name))), 1.0)
            for name in ("Mia", "Rex")}
    layout = plan_layout(["Mia", "Rex"], (64, 64))
    passes = tuple(CharacterPass(name, f"portrait of {name}", refs[name], box, person=False)
                   for name, box in layout)
    plain = RenderJob(prompt="a girl and a dog on a beach", negative="", seeds=(3,), width=64,
                      height=64, steps=2, guidance=5.0, adapters=())
    first = render(settings, plain)[0].image
    options = PassOptions(strength=0.6, margin=0.6, side=64, steps=4, guidance=5.0)
    [done] = render(settings, RenderJob(**{**plain.__dict__, "passes": passes,
                                           "pass_options": options}))
    assert calls == [["t_Mia"], ["t_Rex"]]  # one pass each, with only its own adapter
    assert [name for name, _ in done.regions] == ["Mia", "Rex"] and not done.failed
    outside = np.ones((64, 64), dtype=bool)
    for _, (left, top, right, bottom) in done.regions:
        outside[top:bottom, left:right] = False
    assert outside.any()
    assert np.array_equal(_pixels(done.image)[outside], _pixels(first)[outside])
    assert not np.array_equal(_pixels(done.image), _pixels(first))  # the heads did change


def test_a_page_with_two_characters_is_drawn_as_their_kinds_then_each_head(settings, cast,
                                                                           monkeypatch, capsys):
    pipe = models.load_pipeline(settings)
    calls = _spy_inpainting(monkeypatch, pipe)
    jobs = []
    real_render = illustrate.render
    monkeypatch.setattr(illustrate, "render",
                        lambda s, job, on_step=None: jobs.append(job) or real_render(s, job))
    book = new_book(settings, "alice", "Beach", "Rex and Mia dig.\n\nThe sea.", seed=4)
    book = illustrate_book(settings, "alice", book.id, TWO)
    first, empty = jobs
    assert first.adapters == () and "zwx" not in first.prompt and "ohwx" not in first.prompt
    assert "from left to right: dog, girl" in first.prompt
    assert [p.name for p in first.passes] == ["Rex", "Mia"]
    assert [(p.person, "zwx dog" in p.prompt) for p in first.passes] == [(False, True),
                                                                         (True, False)]
    assert calls == [[first.passes[0].adapter.name], [first.passes[1].adapter.name]]
    assert empty.passes == ()  # a page with nobody: no second pass
    page = book.page(1)
    assert [(r.name, r.box) for r in page.layout] == plan_layout(["Rex", "Mia"], (64, 64))
    assert cli.main(["books", "--json", "--data-dir", str(settings.data_dir),
                     "--user", "alice"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["layouts"] == [[{"name": name, "box": list(box)} for name, box in
                                  plan_layout(["Rex", "Mia"], (64, 64))], []]

    set_order(settings, "alice", book.id, 1, ["mia", "Rex"])  # the parent's order
    jobs.clear()
    illustrate.regenerate_page(settings, "alice", book.id, 1, TWO)
    assert [p.name for p in jobs[0].passes] == ["Mia", "Rex"]
    assert "from left to right: girl, dog" in jobs[0].prompt
    layout = BookStore(settings, "alice").get(book.id).page(1).layout
    assert [r.name for r in layout] == ["Mia", "Rex"]
    with pytest.raises(ValueError, match="name each of its characters once"):
        set_order(settings, "alice", book.id, 1, ["Mia"])


def test_turning_the_second_pass_off_draws_todays_pictures(settings, cast, monkeypatch):
    book = new_book(settings, "alice", "Beach", "Mia and Rex dig.", seed=8)
    off = illustrate_book(settings, "alice", book.id, ONE_PASS)
    store = BookStore(settings, "alice")
    refs = illustrate._adapters(settings, "alice", [1], off, 1.0, None)[0]
    style = get_style("watercolor")
    today = RenderJob(prompt=off.page(1).chosen.prompt, negative=style.negative,
                      seeds=(off.page(1).seed,), width=64, height=64, steps=2,
                      guidance=style.guidance, adapters=(refs["Mia"], refs["Rex"]))
    with Image.open(store.image_path(off, off.page(1).image)) as drawn:
        assert np.array_equal(_pixels(drawn), _pixels(render(settings, today)[0].image))
    assert off.page(1).layout == ()


def test_faces_on_a_first_pass_go_to_the_characters_whose_places_they_are_in():
    page = on_canvas(astronaut().resize((300, 300)), (1024, 640), (40, 140))
    page.paste(grace_hopper().resize((300, 350)), (640, 120))
    found = [f.box for f in faces.find_all_faces(page)]
    assert len(found) == 2
    layout = plan_layout(["Mia", "Gran"], page.size)
    passes = [CharacterPass(name, "", AdapterRef(name, "", 1.0), box, person=True)
              for name, box in layout]
    mia, gran = place_characters(found, passes, page.size, margin=0.6)
    left = min(found, key=lambda box: box[0])
    right = max(found, key=lambda box: box[0])
    assert _contains(mia, left) and _contains(gran, right)
    # a pet is placed by the layout alone, even where a face is
    pet = CharacterPass("Rex", "", AdapterRef("Rex", "", 1.0), layout[1][1], person=False)
    assert place_characters(found, [passes[0], pet], page.size, 0.6)[1] == \
        compose.column_square(layout[1][1], page.size)


def test_a_person_whose_face_is_not_found_is_redrawn_at_the_top_of_their_place():
    layout = plan_layout(["Mia", "Gran"], (1024, 640))
    passes = [CharacterPass(name, "", AdapterRef(name, "", 1.0), box, person=True)
              for name, box in layout]
    only_left = [(100, 150, 260, 310)]
    mia, gran = place_characters(only_left, passes, (1024, 640), margin=0.5)
    assert _contains(mia, only_left[0])
    assert gran == compose.column_square(layout[1][1], (1024, 640))
    assert gran[0] >= 512 and gran[1] < 320  # in Gran's half, near the top


def test_a_failure_in_the_second_pass_keeps_the_pages_before_and_the_first_pass(
        settings, cast, monkeypatch):
    story = "\n\n".join(f"Mia waves, page {n}." for n in range(1, 6))
    book = new_book(settings, "alice", "Five", story, seed=2)
    calls = []
    real = compose.second_pass

    def fifth_fails(pipe, first, *args):
        calls.append(first)
        if len(calls) == 5:
            raise RuntimeError("out of memory (simulated)")
        return real(pipe, first, *args)

    monkeypatch.setattr(compose, "second_pass", fifth_fails)
    monkeypatch.setattr("pipeline.render.second_pass", fifth_fails)
    messages = []
    book = illustrate_book(settings, "alice", book.id, TWO,
                           on_progress=lambda p: messages.append(p.message))
    assert book.missing == ()  # pages 1-4 redrawn, page 5 keeps its first pass
    with Image.open(BookStore(settings, "alice").image_path(book, book.page(5).image)) as kept:
        assert np.array_equal(_pixels(kept), _pixels(calls[4]))
    assert any("page 5: redrawing the faces failed (RuntimeError)" in m for m in messages)


def _contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] \
        and outer[3] >= inner[3]
