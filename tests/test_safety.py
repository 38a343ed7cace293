"""pipeline/safety.py: the picture check (tiny random classifiers built offline, loaded through
the same code as the real one) and the word screen (assets/unsafe_words.txt), and where the
screen is wired in: new books, edited scenes, drafts, characters' looks."""
import dataclasses
import json

import pytest
from PIL import Image

from pipeline import draft, safety
from pipeline.actions.books import edit_scene, new_book
from pipeline.actions.books import draft as draft_action
from pipeline.actions.characters import add_character
from pipeline.models import ModelUnavailableError
from pipeline.testing import save_tiny_safety_model


@pytest.fixture(scope="module")
def flags_everything(tmp_path_factory):
    return save_tiny_safety_model(tmp_path_factory.mktemp("flagging"), flags_everything=True)


def pictures(count):
    return [Image.new("RGB", (64, 48), (40 * n, 90, 200)) for n in range(count)]


def test_the_check_passes_or_flags_each_picture(settings, flags_everything):
    passing = safety.check_pictures(settings, pictures(3))
    assert [v.flagged for v in passing] == [False] * 3 and passing[0].label == "normal"
    flagged = safety.check_pictures(dataclasses.replace(settings, safety_model=str(
        flags_everything)), pictures(2))
    assert [(v.flagged, v.label) for v in flagged] == [(True, "nsfw")] * 2
    assert safety.check_pictures(settings, []) == []


def test_a_flagged_picture_is_redrawn_with_other_seeds_then_given_up(settings, flags_everything,
                                                                     monkeypatch):
    asked = []

    def draw(seeds):
        asked.append(list(seeds))
        return pictures(len(seeds))

    kept = safety.draw_safely(settings, draw, [7, 8])
    assert [(d.seed, d.tries, d.image is not None) for d in kept] == [(7, 1, True), (8, 1, True)]
    assert asked == [[7, 8]]

    asked.clear()
    unsafe = dataclasses.replace(settings, safety_model=str(flags_everything))
    given_up = safety.draw_safely(unsafe, draw, [7, 8])
    assert [(d.image, d.tries) for d in given_up] == [(None, 3), (None, 3)]
    assert asked[0] == [7, 8] and len(asked) == 3
    retried = [seed for seeds in asked[1:] for seed in seeds]
    assert len(set(retried)) == 4 and not {7, 8, 9} & set(retried)  # never another candidate's
    assert retried == [safety.safety_seed(7, 1), safety.safety_seed(8, 1),
                       safety.safety_seed(7, 2), safety.safety_seed(8, 2)]

    verdicts = iter([True, False, False])  # the first draw of seed 7 only is flagged
    monkeypatch.setattr(safety, "check_pictures", lambda s, images: [
        safety.Verdict(next(verdicts), "x", 1.0) for _ in images])
    mixed = safety.draw_safely(settings, draw, [7, 8])
    assert [(d.seed, d.tries, d.image is not None) for d in mixed] == [
        (safety.safety_seed(7, 1), 2, True), (8, 1, True)]


def test_a_safety_model_that_cannot_load_or_has_no_unsafe_label_is_refused(settings, tmp_path):
    with pytest.raises(ModelUnavailableError, match="TALEWEAVER_SAFETY_MODEL"):
        safety.check_pictures(dataclasses.replace(settings, safety_model=str(tmp_path / "no")),
                              pictures(1))
    folder = save_tiny_safety_model(tmp_path / "labels")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "cat", "1": "dog"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError, match="has no unsafe label"):
        safety.check_pictures(dataclasses.replace(settings, safety_model=str(folder)),
                              pictures(1))


@pytest.mark.parametrize("text, word", [
    ("Mia and Rex ran to the lighthouse.", None),
    ("The naked mole rat was sad.", "naked"),
    ("A MURDERER came by", "MURDERER"),
    ("Sie war nackt im Schnee", "nackt"),
    ("Они нашли труп", "труп"),
    ("他们发现了尸体", "尸体"),
    ("死体がある", "死体"),
    ("시체를 보았다", "시체"),
    ("the heroine sang", None),  # heroine is no drug, nor is the French héroïne listed
    ("Hoera! riep Mia", None),  # Dutch hooray, though hoer is listed
    ("ein leichter Wind", None),  # light, though Leiche (a corpse) is listed
    ("小明去了操场", None),  # the playground
    ("a killer whale and a blood orange", None),
])
def test_the_word_screen(text, word):
    assert safety.unsafe_word(text) == word


def test_every_language_section_of_the_list_is_read():
    listed = safety.WORDS.read_text(encoding="utf-8")
    for code in ("en", "fr", "de", "es", "it", "pt", "nl", "ru", "el", "zh", "ja", "ko", "th"):
        assert f"\n[{code}] " in listed
    assert safety.unsafe_word("เปลือย") == "เปลือย" and safety.unsafe_word("γυμνός") == "γυμνός"


def test_unsafe_words_are_refused_where_stories_scenes_and_looks_come_in(settings, monkeypatch):
    with pytest.raises(safety.UnsafeText, match="page 2 has the word 'gore'"):
        new_book(settings, "alice", "T", "A calm day.\n\nThen gore everywhere.")
    with pytest.raises(safety.UnsafeText, match="page 1's scene has the word 'naked'"):
        new_book(settings, "alice", "T", "A calm day.\nScene: a naked man")
    with pytest.raises(safety.UnsafeText, match="the title has the word 'porn'"):
        new_book(settings, "alice", "porn", "A calm day.")
    book = new_book(settings, "alice", "T", "A calm day.", seed=1)
    with pytest.raises(safety.UnsafeText, match="page 1's scene has the word 'corpse'"):
        edit_scene(settings, "alice", book.id, 1, "a corpse on the beach")
    with pytest.raises(safety.UnsafeText, match="the look has the word 'topless'"):
        add_character(settings, "alice", "Mia", "girl", "topless", [])
    with pytest.raises(safety.UnsafeText, match="the premise has the word 'murder'"):
        draft_action(settings, "alice", "a murder at the zoo", [], 2)

    answer = {"pages": [{"text": "A calm day.", "scene": "a park"},
                        {"text": "Then blood and gore.", "scene": "a park"}]}
    monkeypatch.setattr(draft, "load_story_model", lambda settings: None)
    monkeypatch.setattr(draft, "generate", lambda *args: json.dumps(answer))
    with pytest.raises(safety.UnsafeText, match=r"page 2's text in the draft \(try another seed\) "
                                                "has the word 'gore'"):
        draft_action(settings, "alice", "a day in the park", [], 2)


def test_draw_safely_takes_any_drawn_thing_with_its_picture(settings):
    from types import SimpleNamespace

    drawn = safety.draw_safely(settings, lambda seeds: [SimpleNamespace(image=picture, seed=seed)
                                                       for seed, picture in
                                                       zip(seeds, pictures(len(seeds)))],
                               [3], image=lambda rendered: rendered.image)
    assert drawn[0].image.seed == 3 and drawn[0].tries == 1
