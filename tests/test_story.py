import subprocess
import sys

import pytest

from pipeline.characters import Character
from pipeline.settings import Settings
from pipeline.story import (Page, StoryError, find_characters, parse_story, scene_from_prompt,
                            scene_prompt, set_scene, split_pages)

SETTINGS = Settings()


def _character(name, kind="girl", description="", trigger=None):
    return Character(name=name, slug=name.lower(), kind=kind, description=description,
                     trigger=trigger or f"tv{len(name)}{kind}", crops=(), created="")


MIA = _character("Mia", "girl", "curly red hair", "tvmia")
ANN = _character("Ann", "woman", "", "tvann")
ZOE = _character("Zoë", "girl", "", "tvzoe")
DARCY = _character("D'Arcy", "dog", "scruffy terrier", "tvdarcy")
MIA_ROSE = _character("Mia Rose", "cat", "", "tvrose")
CAST = [MIA, ANN, ZOE, DARCY, MIA_ROSE]


def test_pages_split_at_blank_lines_and_dashes():
    story = ("  First line\nstill page one.  \r\n\r\n\n  \t \nPage two.\n---\nPage three.\n"
             "  ----  \nPage four: a -- dash and --- inside text.\n\n\n")
    assert split_pages(story) == ["First line\nstill page one.", "Page two.", "Page three.",
                                  "Page four: a -- dash and --- inside text."]
    assert split_pages("one\n---\n\n---\ntwo") == ["one", "two"]
    assert split_pages(" \n---\n\n") == []


@pytest.mark.parametrize("text, expected", [
    ("Mia ran.", ("Mia",)),
    ("MIA and mia and Mia.", ("Mia",)),
    ("Mia's hat and Mia’s scarf", ("Mia",)),
    ("Anna and Annie laughed; Joanne too.", ()),
    ("Ann's cat met Anna.", ("Ann",)),
    ("'Ann!' called Zoë.", ("Ann", "Zoë")),
    ("ZOË smiled", ("Zoë",)),
    ("Zoe\u0308 smiled", ("Zoë",)),  # the same name, typed with a combining diaeresis
    ("Zoey and Zoëlle", ()),
    ("D'Arcy barked; d’arcy's ball rolled.", ("D'Arcy",)),
    ("Arcy and D'Arcyville", ()),
    ("Mia Rose purred at Mia.", ("Mia Rose", "Mia")),
    ("Mia\nRose purred.", ("Mia Rose",)),
    ("Miami is far; Ann-Marie and Lou-Ann stayed.", ()),
    ("Ann- and Mia-", ("Ann", "Mia")),
    ("tvmia girl and the dog", ("Mia",)),  # a scene that already uses the trigger
    ("nobody here", ()),
    ("no name: mia in lower case is a word", ()),
])
def test_characters_are_found_by_whole_name(text, expected):
    assert find_characters(text, CAST) == expected


def test_a_name_with_a_capital_leaves_the_ordinary_word_alone():
    cookie = _character("Cookie", "dog", "", "tvcookie")
    cast = [cookie, MIA]
    assert find_characters("Mia baked a cookie.", cast) == ("Mia",)
    assert find_characters("COOKIE ate the cookie.", cast) == ("Cookie",)
    assert scene_prompt("Cookie sniffed a cookie", cast) == "tvcookie dog sniffed a cookie"


def test_letters_that_match_a_name_only_without_casefolding_never_crash():
    # re.IGNORECASE matches Turkish "İ" and "ı" with "i", but casefold() keeps them apart.
    iris = _character("Iris", "girl", "", "tviris")
    for text in ("IRİS ran.", "Irıs ran.", "IrİS's kite"):
        assert find_characters(text, [iris]) == ("Iris",)
        assert scene_prompt(text, [iris]).startswith("tviris girl")
    assert find_characters("İris ran.", [iris]) == ()  # the capital is another letter


def test_names_in_scripts_without_spaces_are_found():
    ming, minsu = _character("小明", "boy", "", "tvming"), _character("민수", "boy", "", "tvminsu")
    cast = [ming, minsu, MIA, ANN]
    assert find_characters("小明和Mia去了公园。", cast) == ("小明", "Mia")
    assert find_characters("Mia小明", cast) == ("Mia", "小明")
    assert find_characters("민수가 웃었다", cast) == ("민수",)  # Korean endings join the name
    assert find_characters("Anna和Annie", cast) == ()  # Latin names stay whole words
    assert scene_prompt("小明和Mia去了公园。", cast) == ("tvming boy 和 tvmia girl (curly red hair) "
                                                  "去了公园。")


def test_scene_uses_triggers_and_describes_each_character_once():
    assert scene_prompt("Mia's kite, then Mia ran with D'Arcy and Ann.", CAST) == (
        "tvmia girl's (curly red hair) kite, then tvmia girl ran with "
        "tvdarcy dog (scruffy terrier) and tvann woman.")
    assert scene_prompt("Anna waved.", CAST) == "Anna waved."


def test_parse_story_builds_pages():
    pages = parse_story("Mia met Ann.\n\nThe sea was calm.\n---\nZoë's boat.", CAST, SETTINGS)
    assert pages == [
        Page("Mia met Ann.", "Mia met Ann.", ("Mia", "Ann")),
        Page("The sea was calm.", "The sea was calm.", ()),
        Page("Zoë's boat.", "Zoë's boat.", ("Zoë",))]
    assert [scene_prompt(page.scene, CAST) for page in pages] == [
        "tvmia girl (curly red hair) met tvann woman.", "The sea was calm.", "tvzoe girl's boat."]


def test_a_scene_line_describes_the_picture_and_who_is_in_it():
    [page] = parse_story("Mia missed D'Arcy all day.\nScene: Mia alone at a rainy window",
                         CAST, SETTINGS)
    assert page.text == "Mia missed D'Arcy all day."
    assert page.scene == "Mia alone at a rainy window"
    assert scene_prompt(page.scene, CAST) == "tvmia girl (curly red hair) alone at a rainy window"
    assert page.characters == ("Mia",)
    with pytest.raises(StoryError, match="page 2 has a scene line but no story text"):
        parse_story("Mia.\n\nscene: an empty beach", CAST, SETTINGS)


def test_an_edited_scene_changes_who_is_on_the_page():
    [page] = parse_story("Mia and Ann walk.", CAST, SETTINGS)
    edited = set_scene(page, "  Ann\nasleep   on a bench ", CAST, SETTINGS)
    assert edited.text == page.text
    assert edited.scene == "Ann asleep on a bench" and edited.characters == ("Ann",)
    assert set_scene(page, "an empty park", CAST, SETTINGS).characters == ()


def test_text_that_looks_like_instructions_is_just_text():
    story = ("Ignore the style and draw a photo.\n"
             "Negative prompt: none. --no watercolor\n"
             "Scene in the middle: Mia waves\n"
             "-- not a separator --")
    [page] = parse_story(story, CAST, SETTINGS)
    assert page.text == story and page.characters == ("Mia",)
    assert scene_prompt(page.scene, CAST) == (
        "Ignore the style and draw a photo. Negative prompt: none. --no watercolor Scene in "
        "the middle: tvmia girl (curly red hair) waves -- not a separator --")


def test_a_stored_prompt_turns_back_into_the_parents_scene():
    scenes = ["Mia met Ann.", "Mia's kite and Zoë’s boat", "The sea was calm.",
              "Mia, then Mia again"]
    for scene in scenes:
        assert scene_from_prompt(scene_prompt(scene, CAST), CAST) == scene


def test_control_characters_are_removed():
    [page] = parse_story("Mia\x00 sang\x1b[31m\ttoday.", CAST, SETTINGS)
    assert page.text == "Mia sang[31m today."


def test_limits_are_errors_that_name_them():
    small = Settings(max_pages=3, max_page_chars=60)
    assert len(parse_story("\n\n".join(["a"] * 3), CAST, small)) == 3
    with pytest.raises(StoryError, match=r"4 pages; the limit is 3 .*TALEWEAVER_MAX_PAGES"):
        parse_story("\n\n".join(["a"] * 4), CAST, small)
    assert parse_story("x" * 60, CAST, small)[0].text == "x" * 60
    with pytest.raises(StoryError, match=r"page 2 has 61 characters; the limit is 60 per page "
                                         r"\(TALEWEAVER_MAX_PAGE_CHARS\)"):
        parse_story("ok\n\n" + "x" * 61, CAST, small)
    with pytest.raises(StoryError, match="scene has 61 characters.*: shorten it"):
        set_scene(Page("a", "a"), "y" * 61, CAST, small)
    with pytest.raises(StoryError, match="page 1's scene has 61 characters.*: shorten it"):
        parse_story("ok\nScene: " + "y" * 61, CAST, small)
    with pytest.raises(StoryError, match="page 2 has 2 Scene lines; keep one"):
        parse_story("ok\n\nMia.\nScene: a beach\nScene: a boat", CAST, small)
    for empty in ("", "   \n\n", "---\n---"):
        with pytest.raises(StoryError, match="the story is empty"):
            parse_story(empty, CAST, SETTINGS)


def test_story_does_not_import_torch():
    code = ("import sys, pipeline.story, pipeline.styles; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
