import io
import json
import re
import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import cli, illustrate, models
from pipeline.actions.books import book_json, edit_scene, new_book
from pipeline.actions.drawing import choose_picture, redraw_page
from pipeline.adapter_files import ADAPTER_WEIGHTS
from pipeline.adapters import AdapterRef, adapters_held, release_idle
from pipeline.book import BookStore
from pipeline.characters import CharacterStore, Crop
from pipeline.hardware import ZEROGPU_CALL_SECONDS, estimated_duration
from pipeline.hub.repos import AdapterUnavailableError
from pipeline.illustrate import (IllustrateConfig, IllustrateError, illustrate_book, page_seed,
                                 regenerate_page)
from pipeline.models import encode_long_prompt
from pipeline.render import RenderJob, render, render_seconds
from pipeline.story import StoryError
from pipeline.styles import StyleError, get_style

# One pass with the page's adapters over the whole picture, no weak-page redraws: the drawing
# these tests check (test_compose.py checks the second pass, test_redraw.py the redraws).
TINY = IllustrateConfig(width=64, height=64, steps=2, face_pass=False, redraw_tries=0)
STORY = """Mia found a shell on the beach.

Rex's nose was full of sand.

Mia and Rex built a castle.

The sea was calm and nobody was there."""


def _crops():
    picture = Image.new("RGB", (64, 64), (200, 150, 120))
    return [(picture, Crop("", (64, 64), (0, 0, 64, 64), f"{n}.png")) for n in range(3)]


def _adapter(store, name, adapter_name="reference"):
    return AdapterRef(adapter_name, str(store.adapter_dir(store.get(name))), 1.0)


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _page_pixels(settings, book, number, user="alice"):
    store = BookStore(settings, user)
    with Image.open(store.image_path(book, book.page(number).image)) as image:
        return _pixels(image)


def _job(settings, book, number, adapters=()):
    style = get_style(book.style)
    prompt = book_json(settings, "alice", book)["pages"][number - 1]["prompt"]
    return RenderJob(prompt=prompt, negative=style.negative,
                     seeds=(page_seed(book.seed, number),), width=64, height=64, steps=2,
                     guidance=style.guidance, adapters=tuple(adapters))


def _lora_state(pipe):
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in pipe.unet.modules() if isinstance(m, BaseTunerLayer)]
    return {"loaded": sorted(n for names in pipe.get_list_adapters().values() for n in names),
            "active": sorted(pipe.get_active_adapters()) if layers else [],
            "disabled": any(m.disable_adapters for m in layers), "layers": len(layers)}


def test_each_page_has_exactly_its_characters_adapters(settings, cast, monkeypatch):
    pipe = models.load_pipeline(settings)
    book = new_book(settings, "alice", "Beach day", STORY, seed=7)
    assert [p.characters for p in book.pages] == [("Mia",), ("Rex",), ("Mia", "Rex"), ()]
    seen, real_render = {}, illustrate.render

    def spy(settings_, job, on_step=None):
        drawn = real_render(settings_, job, on_step)
        seen[len(seen) + 1] = _lora_state(pipe)  # as the page was drawn
        return drawn

    monkeypatch.setattr(illustrate, "render", spy)
    book = illustrate_book(settings, "alice", book.id, TINY)
    assert book.missing == ()
    mia, rex = (n for n in seen[3]["active"])
    assert mia.startswith("tw_mia_") and rex.startswith("tw_rex_")
    assert all(state["loaded"] == [mia, rex] for state in seen.values())  # loaded once per book
    assert [(s["active"], s["disabled"]) for s in (seen[1], seen[2], seen[3])] == [
        ([mia], False), ([rex], False), ([mia, rex], False)]
    assert seen[4]["disabled"]

    assert _lora_state(pipe)["loaded"] == [mia, rex]  # kept for the next call, switched off
    assert _lora_state(pipe)["disabled"]
    only_mia = render(settings, _job(settings, book, 1, [_adapter(cast, "Mia")]))[0].image
    assert np.array_equal(_page_pixels(settings, book, 1), _pixels(only_mia))
    base = render(settings, _job(settings, book, 4))[0].image
    assert np.array_equal(_page_pixels(settings, book, 4), _pixels(base))
    with_mia = render(settings, _job(settings, book, 4, [_adapter(cast, "Mia")]))[0].image
    assert not np.array_equal(_pixels(with_mia), _pixels(base))  # the adapters do change pictures


def test_cached_adapters_change_nothing_until_asked_and_release_leaves_the_pipeline_as_found(
        settings, cast):
    pipe = models.load_pipeline(settings)

    def plain():
        return _pixels(pipe("a quiet beach", width=64, height=64, num_inference_steps=2,
                            generator=torch.Generator().manual_seed(3)).images[0])

    before = plain()
    book = new_book(settings, "alice", "Beach day", STORY, seed=1)
    illustrate_book(settings, "alice", book.id, TINY)
    regenerate_page(settings, "alice", book.id, 3, TINY)
    state = _lora_state(pipe)
    assert len(state["loaded"]) == 2 and state["disabled"]  # cached, switched off
    assert np.array_equal(plain(), before)
    release_idle(pipe)
    assert _lora_state(pipe) == {"loaded": [], "active": [], "disabled": False, "layers": 0}
    assert np.array_equal(plain(), before)
    for component in pipe.components.values():  # not even a flag left on the UNet
        assert not {"peft_config", "_hf_peft_config_loaded"} & set(getattr(component, "__dict__", {}))


def test_adapters_stay_loaded_across_redraws_and_go_least_recently_used_first(settings, cast,
                                                                              monkeypatch):
    pipe = models.load_pipeline(settings)
    loads = []
    real_load = pipe.load_lora_weights
    monkeypatch.setattr(pipe, "load_lora_weights",
                        lambda *args, **kwargs: loads.append(kwargs["adapter_name"])
                        or real_load(*args, **kwargs))
    book = new_book(settings, "alice", "Beach day", STORY, seed=1)
    regenerate_page(settings, "alice", book.id, 1, TINY)
    regenerate_page(settings, "alice", book.id, 1, TINY)
    assert len(loads) == 1 and loads[0].startswith("tw_mia_")  # loaded once for both redraws

    first, second = _adapter(cast, "Mia", "first"), _adapter(cast, "Rex", "second")
    for adapter in (first, second):
        with adapters_held(pipe, [adapter], keep=2):
            pass
    assert set(_lora_state(pipe)["loaded"]) == {"first", "second"}  # the oldest, Mia's, went
    with adapters_held(pipe, [first], keep=2):  # used again: now the most recent
        with adapters_held(pipe, [second, _adapter(cast, "Mia", "third")], keep=2):
            assert set(_lora_state(pipe)["loaded"]) == {"first", "second", "third"}  # all held
    assert set(_lora_state(pipe)["loaded"]) == {"first", "third"}  # second was least recent
    release_idle(pipe)


def test_adapters_held_shares_and_leaves_others_alone(settings, cast):
    pipe = models.load_pipeline(settings)
    first, ours = _adapter(cast, "Rex", "first"), _adapter(cast, "Mia", "ours")
    with adapters_held(pipe, [first], keep=0):
        with adapters_held(pipe, [ours, first, ours], keep=0):
            assert _lora_state(pipe)["loaded"] == ["first", "ours"]
        assert _lora_state(pipe)["loaded"] == ["first"]  # still in use by the outer block
    assert _lora_state(pipe)["layers"] == 0

    pipe.load_lora_weights(first.folder, weight_name=ADAPTER_WEIGHTS,
                           adapter_name="foreign")
    try:
        with adapters_held(pipe, [ours, AdapterRef("foreign", "unused", 1.0)], keep=0):
            assert _lora_state(pipe)["loaded"] == ["foreign", "ours"]
        assert _lora_state(pipe)["loaded"] == ["foreign"]  # not ours to remove
    finally:
        pipe.delete_adapters(["foreign"])
        pipe.unload_lora_weights()


def test_books_of_two_users_at_once_keep_their_own_characters(settings, cast):
    bob = CharacterStore(settings, "bob")  # bob's Mia is another person: Rex's adapter
    character = bob.create("Mia", "girl", "", "ohwx", _crops())
    shutil.copytree(cast.adapter_dir(cast.get("Rex")), bob.adapter_dir(character))
    story = "Mia waves.\n\nMia runs.\n\nMia sleeps."
    books = {user: new_book(settings, user, "Mia", story, seed=2) for user in ("alice", "bob")}
    errors = []

    def run(user):
        try:
            illustrate_book(settings, user, books[user].id, TINY)
        except Exception as err:  # reported to the main thread below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(user,)) for user in books]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    alone = {user: new_book(settings, user, "Mia again", story, seed=2) for user in books}
    for user, book in alone.items():
        alone[user] = illustrate_book(settings, user, book.id, TINY)
    for user, book in books.items():
        book = BookStore(settings, user).get(book.id)
        for number in (1, 2, 3):
            assert np.array_equal(_page_pixels(settings, book, number, user),
                                  _page_pixels(settings, alone[user], number, user))
    assert not np.array_equal(_page_pixels(settings, alone["alice"], 1, "alice"),
                              _page_pixels(settings, alone["bob"], 1, "bob"))
    assert _lora_state(models.load_pipeline(settings))["disabled"]


def test_seeds_reproduce_and_differ(settings, cast):
    assert page_seed(7, 1) == page_seed(7, 1)
    assert len({page_seed(7, 1), page_seed(7, 2), page_seed(8, 1)}) == 3
    first = new_book(settings, "alice", "One", STORY, seed=11)
    second = new_book(settings, "alice", "Two", STORY, seed=11)
    first = illustrate_book(settings, "alice", first.id, TINY)
    second = illustrate_book(settings, "alice", second.id, TINY)
    for number in (1, 4):
        assert np.array_equal(_page_pixels(settings, first, number),
                              _page_pixels(settings, second, number))
    assert first.page(1).seed == page_seed(11, 1)

    again = regenerate_page(settings, "alice", first.id, 1, TINY, seed=first.page(1).seed)
    assert len(again.page(1).candidates) == 1  # same seed, same scene: the same picture
    assert np.array_equal(_page_pixels(settings, again, 1), _page_pixels(settings, first, 1))
    fresh = regenerate_page(settings, "alice", first.id, 1, TINY)
    assert fresh.page(1).seed == page_seed(11, 1) + 1
    assert not np.array_equal(_page_pixels(settings, fresh, 1), _page_pixels(settings, first, 1))


def test_candidates_and_choosing(settings, cast):
    book = new_book(settings, "alice", "Beach day", "Mia waves.", seed=5)
    book = illustrate_book(settings, "alice", book.id,
                           IllustrateConfig(candidates=3, width=64, height=64, steps=2))
    page = book.page(1)
    assert [c.seed for c in page.candidates] == [page_seed(5, 1) + i for i in range(3)]
    assert page.image == page.candidates[0].file
    pictures = {c.file: _pixels(Image.open(BookStore(settings, "alice").image_path(book, c.file)))
                for c in page.candidates}
    assert not np.array_equal(*list(pictures.values())[:2])
    book = choose_picture(settings, "alice", book.id, 1, 3)
    assert book.page(1).image == page.candidates[2].file
    with pytest.raises(IllustrateError, match="page 1 has 3 pictures; choose one from 1 to 3"):
        choose_picture(settings, "alice", book.id, 1, 4)


def test_regenerate_with_an_edited_scene(settings, cast):
    book = new_book(settings, "alice", "Beach day", STORY, seed=3)
    book = illustrate_book(settings, "alice", book.id, TINY)
    book = redraw_page(settings, "alice", book.id, 1, TINY,
                       scene="Rex asleep under a beach umbrella", seed=42)
    page = book.page(1)
    assert page.text == "Mia found a shell on the beach."
    assert page.characters == ("Rex",) and page.scene == "Rex asleep under a beach umbrella"
    assert page.seed == 42 and len(page.candidates) == 2
    style = get_style("watercolor")
    assert page.chosen.prompt == style.prompt("zwx dog asleep under a beach umbrella")
    assert book_json(settings, "alice", book)["pages"][0]["prompt"] == page.chosen.prompt
    with pytest.raises(StoryError, match="page 1's scene has .* the limit is"):
        redraw_page(settings, "alice", book.id, 1, TINY,
                    scene="x" * (settings.max_page_chars + 1))


def test_a_scene_edited_before_drawing_changes_the_page_and_its_characters(settings, cast):
    book = new_book(settings, "alice", "Beach day", STORY, seed=3)
    book = edit_scene(settings, "alice", book.id, 4, "Mia and Rex wave goodbye")
    page = book.page(4)
    assert page.scene == "Mia and Rex wave goodbye"
    assert page.characters == ("Mia", "Rex") and not page.illustrated
    assert book.characters == ("Mia", "Rex") and BookStore(settings, "alice").get(book.id) == book
    with pytest.raises(StoryError, match="page 4's scene has"):
        edit_scene(settings, "alice", book.id, 4, "x" * 5000)


def test_a_failed_page_keeps_the_pages_before_it_and_the_book_resumes(settings, cast,
                                                                        monkeypatch):
    whole = new_book(settings, "alice", "Whole", STORY, seed=9)
    whole = illustrate_book(settings, "alice", whole.id, TINY)
    book = new_book(settings, "alice", "Interrupted", STORY, seed=9)
    real_render, calls = illustrate.render, []

    def failing(settings_, job, on_step=None):
        calls.append(job.seeds[0])
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_render(settings_, job, on_step)

    monkeypatch.setattr(illustrate, "render", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        illustrate_book(settings, "alice", book.id, TINY)
    kept = BookStore(settings, "alice").get(book.id)
    assert kept.missing == (3, 4) and kept.page(2).illustrated
    assert _lora_state(models.load_pipeline(settings))["disabled"]  # nothing left switched on

    calls.clear()
    done = illustrate_book(settings, "alice", book.id, TINY)
    assert calls == [page_seed(9, 3), page_seed(9, 4)] and done.missing == ()
    for number in range(1, 5):
        assert np.array_equal(_page_pixels(settings, done, number),
                              _page_pixels(settings, whole, number))


def test_pages_of_a_character_without_an_adapter_wait_and_the_others_are_drawn(settings, cast):
    store = CharacterStore(settings, "alice")
    store.create("Grandma", "woman", "", "tvgran", _crops())
    book = new_book(settings, "alice", "Visit", "Mia waves.\n\nGrandma bakes.\n\nThe end.",
                    seed=1)
    book = illustrate_book(settings, "alice", book.id, TINY)
    assert book.missing == (2,) and book.page(1).illustrated and book.page(3).illustrated
    assert book.page(2).waiting == "Grandma has no trained adapter on this machine yet: train " \
        "Grandma first"
    with pytest.raises(AdapterUnavailableError, match="train Grandma first"):
        regenerate_page(settings, "alice", book.id, 2, TINY)
    store.delete("Grandma")
    book = illustrate_book(settings, "alice", book.id, TINY)
    assert book.page(2).waiting == "Grandma is not one of your characters any more; add " \
        "Grandma again"
    assert book.page(1).waiting == ""


def test_bad_requests_are_clear_errors(settings, cast):
    for kwargs, message in (({"candidates": 0}, "candidates must be from 1 to 4"),
                            ({"candidates": 5}, "candidates must be from 1 to 4"),
                            ({"adapter_weight": 0}, "adapter_weight"),
                            ({"width": 100}, "width must be a multiple of 8"),
                            ({"steps": 0}, "steps must be from 1 to 150")):
        with pytest.raises(IllustrateError, match=message):
            IllustrateConfig(**kwargs)
    with pytest.raises(StyleError, match="unknown style 'oil'; choose one of: watercolor"):
        new_book(settings, "alice", "T", "Mia.", style="oil")
    with pytest.raises(IllustrateError, match="seed must be a whole number"):
        new_book(settings, "alice", "T", "Mia.", seed=-1)
    with pytest.raises(StoryError, match="the story is empty"):
        new_book(settings, "alice", "T", " \n---\n ")
    with pytest.raises(StoryError, match="41 pages; the limit is 40"):
        new_book(settings, "alice", "T", "\n\n".join(["Mia."] * 41))
    book = new_book(settings, "alice", "T", "Mia.")
    with pytest.raises(ValueError, match="page 2 does not exist"):
        regenerate_page(settings, "alice", book.id, 2, TINY)
    with pytest.raises(ValueError, match="no book with id"):
        illustrate_book(settings, "alice", "abc123", TINY)
    assert BookStore(settings, "alice").get(book.id).missing == (1,)


def test_long_prompts_are_encoded_whole(settings):
    pipe = models.load_pipeline(settings)
    short = encode_long_prompt(pipe, "a girl", "ugly")
    expected = pipe.encode_prompt("a girl", device="cpu", num_images_per_prompt=1,
                                  do_classifier_free_guidance=True, negative_prompt="ugly")
    for key, want in zip(("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
                          "negative_pooled_prompt_embeds"), expected):
        assert torch.equal(short[key], want), key
    # The tiny tokenizer has one token per character, so this prompt spans several 75-token
    # windows; the negative prompt gets as many, and the style's last words still count.
    scene = "ignore the style, negative prompt: none, " * 4
    style = get_style("watercolor")
    tokens = len(pipe.tokenizer(style.prompt(scene), add_special_tokens=False).input_ids)
    whole = encode_long_prompt(pipe, style.prompt(scene), style.negative)
    other = encode_long_prompt(pipe, style.prompt(scene) + " at night", style.negative)
    windows = -(-tokens // 75)
    assert windows >= 3
    assert whole["prompt_embeds"].shape[1] == whole["negative_prompt_embeds"].shape[1] == 77 * windows
    assert not torch.equal(whole["prompt_embeds"][:, -77:], other["prompt_embeds"][:, -77:])


def test_render_asks_zerogpu_for_a_bounded_duration():
    job = RenderJob("p", "n", (1,), 1024, 1024, 30, 6.0, ())
    one = estimated_duration(render_seconds, None, job)
    four = estimated_duration(render_seconds, None, RenderJob("p", "n", (1, 2, 3, 4), 1024, 1024,
                                                              30, 6.0, ()))
    assert 10 < one < four <= ZEROGPU_CALL_SECONDS


def _cli(monkeypatch, capsys, settings, *args, stdin=None):
    monkeypatch.setenv("TALEWEAVER_BASE_MODEL", settings.base_model)
    monkeypatch.setenv("TALEWEAVER_VAE", "")
    monkeypatch.setenv("TALEWEAVER_DEVICE", "cpu")
    monkeypatch.setenv("TALEWEAVER_SAFETY_MODEL", settings.safety_model)
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["--data-dir", str(settings.data_dir), "--user", "alice", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_illustrates_regenerates_chooses_and_resumes(settings, cast, monkeypatch, capsys):
    size = ["--size", "64x64", "--steps", "2"]
    code, out, err = _cli(monkeypatch, capsys, settings, "illustrate", "--title", "Beach day",
                          "--story", "-", "--style", "cartoon", "--seed", "4",
                          "--candidates", "2", "--json", *size, stdin=STORY)
    assert code == 0, err
    record = json.loads(out)
    book_id = record["id"]
    assert f"book {book_id}: 4 pages to draw" in err and "4/4" in err
    assert record["style"] == "cartoon" and len(record["pages"][0]["candidates"]) == 2

    code, out, err = _cli(monkeypatch, capsys, settings, "illustrate-page", book_id, "2",
                          "--scene", "Mia and Rex dig", "--seed", "99", *size)
    assert code == 0, err
    assert "page 2" in out
    page = BookStore(settings, "alice").get(book_id).page(2)
    assert page.seed == 99 and page.characters == ("Mia", "Rex")

    code, out, err = _cli(monkeypatch, capsys, settings, "choose-candidate", book_id, "2", "1")
    assert code == 0, err
    assert BookStore(settings, "alice").get(book_id).page(2).seed != 99

    story = settings.data_dir.parent / "story.txt"
    story.write_text("Mia.\n\nRex.", encoding="utf-8")
    monkeypatch.setattr(illustrate, "render", _fail_second(illustrate.render))
    code, out, err = _cli(monkeypatch, capsys, settings, "illustrate", "--title", "Short",
                          "--story", str(story), *size)
    assert code == 1 and "error: simulated" in err
    interrupted = next(b for b in BookStore(settings, "alice").list() if b.title == "Short")
    assert f"illustrate --book {interrupted.id}" in err
    monkeypatch.undo()
    code, out, err = _cli(monkeypatch, capsys, settings, "illustrate", "--book", interrupted.id,
                          *size)
    assert code == 0, err
    assert interrupted.id in out
    assert BookStore(settings, "alice").get(interrupted.id).missing == ()

    code, out, err = _cli(monkeypatch, capsys, settings, "illustrate", "--book", book_id,
                          "--title", "x")
    assert code == 1 and "not both" in err


def _fail_second(real):
    calls = []

    def render_(settings, job, on_step=None):
        calls.append(job)
        if len(calls) == 2:
            raise RuntimeError("simulated failure")
        return real(settings, job, on_step)

    return render_


def test_on_zerogpu_each_page_loads_its_adapters_in_its_own_call(settings, cast, monkeypatch):
    book = new_book(settings, "alice", "Beach day", STORY, seed=5)
    expected = illustrate_book(settings, "alice", book.id, TINY)
    pipe = models.load_pipeline(settings)
    release_idle(pipe)  # what this process cached, unlike a ZeroGPU worker
    monkeypatch.setattr(illustrate, "on_zerogpu", lambda: True)
    monkeypatch.setattr("pipeline.render.on_zerogpu", lambda: True)
    loaded_between_pages = []
    again = new_book(settings, "alice", "Beach day", STORY, seed=5)
    illustrate_book(settings, "alice", again.id, TINY,
                    on_progress=lambda p: loaded_between_pages.append(_lora_state(pipe)["layers"]))
    assert set(loaded_between_pages) == {0}  # nothing held in the main process
    for number in range(1, 5):
        assert np.array_equal(_page_pixels(settings, BookStore(settings, "alice").get(again.id),
                                           number), _page_pixels(settings, expected, number))


@pytest.mark.parametrize("field, value, message", [
    ("candidates", "2", "candidates must be from 1 to 4, not '2'"),
    ("candidates", 2.0, "candidates must be from 1 to 4"),
    ("candidates", True, "candidates must be from 1 to 4"),
    ("adapter_weight", float("nan"), "adapter_weight must be above 0 and at most 2, not nan"),
    ("adapter_weight", float("inf"), "adapter_weight"),
    ("adapter_weight", "1", "adapter_weight"),
    ("width", 10 ** 9, "width must be a multiple of 8 from 64 to 2048"),
    ("height", 64.0, "height must be a multiple of 8"),
    ("steps", [2], "steps must be from 1 to 150, not [2]"),
])
def test_drawing_options_refuse_wrong_types_nan_and_huge_values(field, value, message):
    with pytest.raises(IllustrateError, match=re.escape(message)):
        IllustrateConfig(**{field: value})


def test_every_picture_passes_the_safety_check_and_a_flagged_one_is_drawn_again(
        settings, cast, monkeypatch, tmp_path):
    import dataclasses

    from pipeline import safety
    from pipeline.testing import save_tiny_safety_model

    checked = []
    real = safety.check_pictures

    def first_one_flagged(settings_, images):
        verdicts = real(settings_, images)
        checked.append(len(images))
        if len(checked) == 1:  # page 1's first candidate, the first time
            verdicts[0] = safety.Verdict(True, "nsfw", 0.9)
        return verdicts

    monkeypatch.setattr(safety, "check_pictures", first_one_flagged)
    book = new_book(settings, "alice", "Sea", "Mia swims.\n\nRex digs.", seed=5)
    book = illustrate_book(settings, "alice", book.id, dataclasses.replace(TINY, candidates=2))
    first = page_seed(book.seed, book.page(1).key)
    redrawn = safety.safety_seed(first, 1)
    assert checked == [2, 1, 2]  # page 1, its flagged picture again, page 2
    assert [c.seed for c in book.page(1).candidates] == [redrawn, first + 1]
    assert not book.missing and book.page(1).waiting == ""
    kept = _page_pixels(settings, book, 1)
    again = regenerate_page(settings, "alice", book.id, 1, TINY, seed=redrawn)
    assert np.array_equal(_page_pixels(settings, again, 1), kept)  # its seed draws it again

    monkeypatch.setattr(safety, "check_pictures", real)
    flagging = dataclasses.replace(settings, safety_model=str(
        save_tiny_safety_model(tmp_path / "flags", flags_everything=True)))
    night = new_book(flagging, "alice", "Night", "Mia sleeps.\n\nThe moon.", seed=2)
    said = []
    night = illustrate_book(flagging, "alice", night.id, TINY,
                            on_progress=lambda progress: said.append(progress.message))
    assert night.missing == (1, 2) and not night.page(1).candidates
    assert "page 1: it could not be drawn safely: the picture safety check flagged every " \
        "picture, 3 tries each; change its scene and draw it again" in said
    assert night.page(1).waiting == illustrate.UNSAFE.format(tries=safety.SAFETY_TRIES)
    with pytest.raises(IllustrateError, match="page 1: it could not be drawn safely"):
        regenerate_page(flagging, "alice", night.id, 1, TINY)
