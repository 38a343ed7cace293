"""Characters: photos to a saved character, trigger tokens, name safety, users, deletion, CLI.

Face detection costs about 1.5 s a photo, so most tests lower min_photos and use one or two.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
from PIL import Image

from pipeline import characters
from pipeline.actions.characters import NotEnoughPhotos, add_character
from pipeline.characters import CharacterStore, choose_trigger, trigger_tokens
from pipeline.cli import main
from pipeline.store import StoreError


@pytest.fixture
def one_photo(settings):
    """Settings that accept a character made from a single photo."""
    return dataclasses.replace(settings, min_photos=1)


def _folder_files(settings, user="local"):
    root = settings.data_dir / "users" / user / "characters"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_add_character_saves_crops_and_reports(settings, face_photos):
    seen = []
    added = add_character(settings, "local", "  Zoë ", " little   girl ", "curly red hair,\n"
                          "yellow raincoat", face_photos, on_progress=seen.append)
    character = added.character
    assert (character.name, character.slug, character.kind) == ("Zoë", "zoe", "little girl")
    assert character.description == "curly red hair, yellow raincoat"
    assert character.trigger in trigger_tokens() and character.warnings == ()
    assert [r.accepted for r in added.reports] == [True] * 5
    assert [c.source for c in character.crops] == [p.name for p in face_photos]
    store = CharacterStore(settings, "local")
    assert store.get("zoë") == character == store.list()[0]
    for crop in character.crops:
        with Image.open(store.path(character, crop.file)) as image:
            assert image.size == (64, 64) and image.format == "PNG"
        assert crop.original == "" and len(crop.crop_box) == 4
    assert not (store.folder(character) / "originals").exists()  # uploads are not kept
    assert json.loads(json.dumps(added.to_json()))["photos"][0]["accepted"] is True
    assert seen[-1].done == seen[-1].total == 5 and seen[0].unit == "photo"
    assert store.delete("ZOË") == character
    assert store.list() == [] and _folder_files(settings) == [".lock"]


def test_keep_originals_copies_uploads_named_by_their_content(one_photo, face_photos, tmp_path):
    lying = tmp_path / "really_a_png.jpg"
    shutil.copyfile(face_photos[1], lying)  # face_photos[1] is a PNG
    added = add_character(one_photo, "local", "Mia", "girl", "", [face_photos[0], lying],
                          keep_originals=True)
    store = CharacterStore(one_photo, "local")
    kept = [c.original for c in added.character.crops]
    assert kept == ["originals/01.jpg", "originals/02.png"]
    assert store.path(added.character, kept[1]).read_bytes() == lying.read_bytes()
    assert lying.exists()  # the caller's files are left alone


def test_too_few_accepted_photos_saves_nothing(settings, face_photos, tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo")
    Image.new("RGB", (300, 200), "white").save(tmp_path / "tiny.png")
    uploads = [face_photos[0], tmp_path / "notes.jpg", face_photos[2], tmp_path / "tiny.png"]
    with pytest.raises(NotEnoughPhotos) as caught:
        add_character(settings, "local", "Mia", "girl", "", uploads)
    error = caught.value
    assert isinstance(error, ValueError)
    assert [(r.accepted, r.reason) for r in error.reports] == [
        (True, ""), (False, "not_an_image"), (True, ""), (False, "too_small")]
    assert str(error).startswith("Mia: only 2 of 4 photos can be used and at least 3 are needed")
    assert "photo 2 (notes.jpg): is not a photo we can read" in str(error)
    assert CharacterStore(settings, "local").list() == [] and _folder_files(settings) == []


def test_a_failure_mid_way_leaves_no_half_character(one_photo, face_photos, monkeypatch):
    real_save, calls = Image.Image.save, []

    def save_then_fail(image, *args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        add_character(one_photo, "local", "Mia", "girl", "", face_photos[:2])
    assert len(calls) == 2
    assert CharacterStore(one_photo, "local").list() == []
    assert _folder_files(one_photo) == [".lock"]  # no staged folder left behind


def test_names_stay_inside_the_users_folder(one_photo, face_photos):
    store = CharacterStore(one_photo, "local")
    evil = add_character(one_photo, "local", "../../../etc/passwd", "man", "", face_photos[:1])
    chinese = add_character(one_photo, "local", "小明", "boy", "", face_photos[1:2])
    assert evil.character.slug == "etc-passwd" and chinese.character.slug.startswith("x-")
    for added in (evil, chinese):
        assert store.root in store.folder(added.character).parents
    assert {c.name for c in store.list()} == {"../../../etc/passwd", "小明"}
    assert evil.character.trigger != chinese.character.trigger
    assert sorted(p.name for p in one_photo.data_dir.iterdir()) == ["users"]


@pytest.mark.parametrize("name, kind, description, problem", [
    ("", "girl", "", "name is empty"),
    ("x" * 61, "girl", "", "the limit is 60"),
    ("Mia\u202egirl", "girl", "", "control characters"),
    ("Mia", "", "", "say who this is"),
    ("Mia", "123", "", "say who this is"),
    ("Mia", "a" * 41, "", "the limit is 40"),
    ("Mia", "girl", "d" * 301, "the limit is 300"),
    ("Mia", "girl", "red hair\u202e", "control characters"),
])
def test_bad_names_kinds_descriptions_fail_before_any_photo_is_read(settings, name, kind,
                                                                     description, problem):
    with pytest.raises(StoreError, match=problem):
        add_character(settings, "local", name, kind, description, ["/nonexistent.jpg"])


@pytest.mark.parametrize("kind, description, problem", [
    ("", "", "kind has no letters"), ("girl", "red\nhair", "line breaks")])
def test_the_store_checks_what_add_character_checks(settings, kind, description, problem):
    crops = [(Image.new("RGB", (64, 64)), characters.Crop("", (64, 64), (0, 0, 64, 64)))]
    with pytest.raises(StoreError, match=problem):
        CharacterStore(settings, "local").create("Mia", kind, description, "ohwx", crops)


def test_long_unicode_names_and_duplicates(one_photo, face_photos):
    name = "Große-Oma Zoë O'Brien-Łukasiewicz de la Fuente y Montenegro"[:60]
    added = add_character(one_photo, "local", name, "grandma", "", face_photos[:1])
    assert added.character.name == name and len(added.character.slug) <= 40
    with pytest.raises(StoreError, match="already have a character named"):
        add_character(one_photo, "local", name.upper(), "grandma", "", ["/nonexistent.jpg"])


def test_photo_count_limits(settings):
    for too_few in ([], ["/a.jpg", "/b.jpg"]):
        with pytest.raises(ValueError, match="choose 3 to 20 photos"):
            add_character(settings, "local", "Mia", "girl", "", too_few)
    with pytest.raises(ValueError, match="you gave 21 photos$"):
        add_character(settings, "local", "Mia", "girl", "", ["/x.jpg"] * 21)
    with pytest.raises(ValueError, match="you gave 1 photo$"):
        add_character(settings, "local", "Mia", "girl", "", ["/x.jpg"])


def test_a_single_photo_is_counted_in_the_singular(one_photo, tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(NotEnoughPhotos, match="^Mia: only 0 of 1 photo can be used and at least "
                                              "1 is needed, so nothing was saved"):
        add_character(one_photo, "local", "Mia", "girl", "", [tmp_path / "notes.jpg"])


def test_two_users_never_see_each_other(one_photo, face_photos):
    alice = add_character(one_photo, "alice", "Mia", "girl", "", face_photos[:1]).character
    bob = add_character(one_photo, "bob", "Mia", "girl", "", face_photos[1:2]).character
    alices, bobs = CharacterStore(one_photo, "alice"), CharacterStore(one_photo, "bob")
    assert alices.list() == [alice] and bobs.list() == [bob]
    alices.delete("Mia")
    assert alices.list() == [] and bobs.list() == [bob]
    with pytest.raises(characters.CharacterNotFound):
        alices.get("Mia")


def test_trigger_choice_is_deterministic_unique_and_bounded():
    tokens = trigger_tokens()
    first = choose_trigger("alice", "Mia", set())
    assert first == choose_trigger("alice", "MIA", ()) and first in tokens
    assert choose_trigger("alice", "Mia", {first}) != first
    assert len({choose_trigger("alice", f"kid {i}", ()) for i in range(40)}) > 20
    taken: set[str] = set()
    for i in range(len(tokens)):
        taken.add(choose_trigger("alice", f"kid {i}", taken))
    assert taken == set(tokens)
    with pytest.raises(StoreError, match="the most one account can have"):
        choose_trigger("alice", "one more", taken)


def test_trigger_token_asset():
    lines = characters.TRIGGER_TOKENS.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#")]
    assert "bpe_simple_vocab_16e6" in " ".join(header) and "make_trigger_tokens.py" in header[0]
    tokens = trigger_tokens()
    assert len(tokens) >= 60 and len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[a-z]{3,6}", t) and not re.search(r"(.)\1\1", t) for t in tokens)
    everyday = {"the", "and", "girl", "boy", "man", "woman", "dog", "cat", "baby", "sks",
                "photo", "person", "style", "art", "book", "kid", "mom", "dad"}
    assert not everyday & set(tokens)
    assert not any(w in t for t in tokens for w in ("girl", "boy", "dog", "cat", "man", "baby"))
    # Once in the list: names, words of other languages, slang, a celebrity, a slur-like string.
    recognisable = {"meria", "akshi", "aliaa", "anthi", "irah", "jadine", "jongin", "trell",
                    "kilig", "iklan", "minat", "selca", "szn", "regram", "friyay", "ilysm",
                    "iamsrk", "srisri", "nigan", "myjaps", "aceae"}
    assert not recognisable & set(tokens)


def test_character_records_without_new_fields_still_load():
    record = {"name": "Mia", "slug": "mia", "kind": "girl", "trigger": "ohwx", "created": "x",
              "crops": [{"file": "crops/01.png", "original_size": [512, 512],
                         "crop_box": [0, 0, 512, 512]}]}
    character = characters.Character.from_json(record)
    assert character.crops[0].original == "" and character.description == ""


@pytest.fixture
def cli_env(monkeypatch):
    """The CLI reads its settings from the environment: 64 px crops, as in the other tests."""
    monkeypatch.setenv("TALEWEAVER_RESOLUTION", "64")
    return monkeypatch


def test_cli_add_list_delete(settings, face_photos, capsys, tmp_path, cli_env):
    data = ["--data-dir", str(settings.data_dir)]
    user = ["--user", "grandpa"]
    (tmp_path / "notes.jpg").write_text("not a photo")
    Image.new("RGB", (300, 200), "white").save(tmp_path / "tiny.png")
    bad = [str(tmp_path / name) for name in ("notes.jpg", "tiny.png", "gone.jpg")]
    code = main([*data, *user, "add-character", "--name", "Rex", "--kind", "dog", *bad])
    out = capsys.readouterr()
    assert code == 1 and "only 0 of 3 photos can be used" in out.err
    assert "photo 3 (gone.jpg): could not be read" in out.err
    assert main([*data, *user, "--json", "add-character", "--name", "Rex", "--kind", "dog", *bad]) == 1
    failed = json.loads(capsys.readouterr().out)
    assert [p["reason"] for p in failed["photos"]] == ["not_an_image", "too_small", "unreadable"]

    code = main([*data, *user, "add-character", "--name", "Grandpa Joe", "--kind", "man",
                 "--description", "white beard", "--keep-originals", "--json",
                 *map(str, face_photos[:3])])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["character"]["name"] == "Grandpa Joe"
    assert [p["accepted"] for p in result["photos"]] == [True, True, True]
    assert result["character"]["crops"][0]["original"] == "originals/01.jpg"

    assert main([*data, *user, "characters"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("Grandpa Joe (man): 3 photos, trigger") and "not trained yet" in listing
    assert main([*data, "characters"]) == 0  # another user: the default local one
    assert "No characters yet" in capsys.readouterr().out

    assert main([*data, *user, "delete-character", "grandpa joe"]) == 0
    assert "Deleted Grandpa Joe" in capsys.readouterr().out
    assert main([*data, *user, "characters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main([*data, *user, "delete-character", "Nobody"]) == 1
    assert "no character named 'Nobody'" in capsys.readouterr().err


def test_cli_prints_a_report_per_photo(settings, face_photos, capsys, cli_env):
    cli_env.setenv("TALEWEAVER_MIN_PHOTOS", "1")
    code = main(["--data-dir", str(settings.data_dir), "add-character", "--name", "Ann",
                 "--kind", "woman", str(face_photos[0]), str(face_photos[0])])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"ok  photo 1 ({face_photos[0].name}): accepted"
    assert out[1].startswith(f"NO  photo 2 ({face_photos[0].name}): is the same file as photo 1")
    assert out[2].startswith("Saved Ann (woman) with 1 of 2 photos; trigger token")


def test_a_damaged_character_is_listed_apart_and_can_still_be_deleted(settings):
    from conftest import make_crops

    from pipeline.characters import CharacterNotFound, DamagedCharacter

    store = CharacterStore(settings, "alice")
    store.create("Mia", "girl", "", "ohwx", make_crops(3, 64, seed=1))
    zoe = store.create("Zoë", "girl", "", "qqzx", make_crops(3, 64, seed=2))
    (store.folder(zoe) / "character.json").write_text('{"name": ["a list"]}')
    assert [c.name for c in store.list()] == ["Mia"] and store.damaged() == ["zoe"]
    with pytest.raises(DamagedCharacter, match="Zoë's record is damaged"):
        store.get("Zoë")
    with pytest.raises(CharacterNotFound):
        store.delete_damaged("Mia")  # not damaged: the ordinary delete is for it
    assert store.delete_damaged("Zoë") == "zoe"
    assert store.damaged() == [] and [c.name for c in store.list()] == ["Mia"]


# --- characters grow: more photos, a new kind or look; out-of-date adapters ----------------

def _trained_on_it_as_it_is(settings, character):
    """An adapter folder whose record says it learnt this character as it is now."""
    from pipeline.adapter_files import ADAPTER_WEIGHTS, TRAIN_CONFIG
    from pipeline.training.config import TrainingRecord, preset_config
    from pipeline.training.data import instance_prompt

    folder = CharacterStore(settings, "local").adapter_dir(character)
    folder.mkdir(parents=True)
    (folder / ADAPTER_WEIGHTS).write_bytes(b"weights")
    record = TrainingRecord(base_model=settings.base_model, resolution=settings.resolution,
                            trigger=character.trigger,
                            instance_prompt=instance_prompt(character, False),
                            validation_prompt="x", config=preset_config("person", 4),
                            photos=character.photos_key)
    (folder / TRAIN_CONFIG).write_text(json.dumps(record.to_dict()))


def test_photos_added_to_a_character_and_its_adapter_out_of_date(one_photo, face_photos,
                                                                  tmp_path):
    from pipeline.actions.characters import add_photos, list_characters

    added = add_character(one_photo, "local", "Mia", "girl", "", face_photos[:1])
    _trained_on_it_as_it_is(one_photo, added.character)
    assert list_characters(one_photo, "local")[0].out_of_date == ""
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(NotEnoughPhotos, match="^Mia: only 0 of 1 photo can be used"):
        add_photos(one_photo, "local", "mia", [tmp_path / "notes.jpg"])
    assert CharacterStore(one_photo, "local").get("Mia") == added.character  # unchanged

    grown = add_photos(one_photo, "local", "mia", [face_photos[1]], keep_originals=True)
    files = [crop.file for crop in grown.character.crops]
    assert files == ["crops/01.png", "crops/02.png"]
    assert grown.character.crops[1].original == "originals/02.png"
    assert grown.character.crops[0] == added.character.crops[0]
    assert grown.out_of_date == "its photos changed since it was trained (1 then, 2 now)"
    [row] = list_characters(one_photo, "local")
    assert row.photos == 2 and row.trained and row.out_of_date == grown.out_of_date
    assert grown.to_json()["out_of_date"] == grown.out_of_date


def test_photo_limits_for_a_growing_character(settings):
    from pipeline.actions.characters import add_photos

    store = CharacterStore(settings, "local")
    store.create("Mia", "girl", "", "ohwx", [(Image.new("RGB", (64, 64)), characters.Crop(
        "", (64, 64), (0, 0, 64, 64)))] * 19)
    with pytest.raises(ValueError, match="^Mia has 19 photos and a character uses at most 20, "
                                         "so it can take 1 more photo; you gave 2 photos$"):
        add_photos(settings, "local", "Mia", ["/a.jpg", "/b.jpg"])
    with pytest.raises(ValueError, match="you gave 0 photos"):
        add_photos(settings, "local", "Mia", [])


def test_a_new_kind_makes_the_adapter_out_of_date_and_a_new_look_does_not(settings, character):
    from pipeline.actions.characters import change_character

    _trained_on_it_as_it_is(settings, character)
    looked = change_character(settings, "local", "mia", description=" short   brown hair ")
    assert looked.character.description == "short brown hair" and looked.out_of_date == ""
    older = change_character(settings, "local", "Mia", kind="big  girl")
    assert older.character.kind == "big girl" and older.character.description == \
        "short brown hair"
    assert older.out_of_date == "its kind (or the look its training used) changed since it " \
                                "was trained"
    with pytest.raises(StoreError, match="kind has no letters"):
        change_character(settings, "local", "Mia", kind="42")
    with pytest.raises(StoreError, match="description contains line breaks"):
        change_character(settings, "local", "Mia", description="a\x00b")
    assert CharacterStore(settings, "local").get("Mia").kind == "big girl"


def test_deleting_a_character_names_the_books_that_use_it(settings, character):
    from pipeline.actions.books import book_json, new_book
    from pipeline.actions.characters import books_using, delete_character

    sea = new_book(settings, "local", "Sea", "Mia swims.\n\nThe sea.\n\nMia sleeps.", seed=1)
    new_book(settings, "local", "Moon", "The moon.", seed=2)
    [use] = books_using(settings, "local", "MIA")
    assert (use.id, use.title, use.pages) == (sea.id, "Sea", (1, 3))
    assert book_json(settings, "local", sea)["waiting"] == [
        "Mia isn't trained yet, so pages 1, 3 can't be drawn: train Mia first"]
    deleted = delete_character(settings, "local", "Mia", None, with_repo=False)
    assert json.loads(json.dumps(deleted.to_json()))["books"] == [
        {"id": sea.id, "title": "Sea", "pages": [1, 3]}]
    assert book_json(settings, "local", sea)["waiting"] == [
        "Mia is no longer one of your characters (deleted?), so pages 1, 3 can't be drawn: "
        "add Mia again, or edit the scene"]


def test_cli_grows_and_changes_a_character(one_photo, face_photos, capsys, cli_env):
    cli_env.setenv("TALEWEAVER_MIN_PHOTOS", "1")
    data = ["--data-dir", str(one_photo.data_dir)]
    assert main([*data, "add-character", "--name", "Ann", "--kind", "woman",
                 str(face_photos[0])]) == 0
    capsys.readouterr()
    assert main([*data, "add-photos", "ann", str(face_photos[1])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"ok  photo 1 ({face_photos[1].name}): accepted"
    assert out[1].startswith("Added 1 of 1 photos to Ann, who now has 2 photos.")
    assert main([*data, "change-character", "Ann", "--kind", "grandma"]) == 0
    assert capsys.readouterr().out.strip() == "Ann is a grandma."
    assert main([*data, "change-character", "Ann"]) == 1
    assert "say what to change" in capsys.readouterr().err
