import json

import pytest

from pipeline.styles import SDXL_SIZES, STYLES_FILE, StyleError, get_style, load_styles

REQUIRED = {"watercolor": "Watercolor storybook", "pastel": "Soft pastel",
            "cartoon": "Bold cartoon", "pencil": "Pencil sketch", "3d": "3D animation",
            "papercut": "Paper cut-out"}


def _write(tmp_path, record):
    path = tmp_path / "styles.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def _entry(**changes):
    entry = {"label": "Ink", "prefix": "ink drawing", "suffix": "fine lines",
             "negative": "color", "guidance": 6.0, "steps": 30, "width": 1024, "height": 1024}
    entry.update(changes)
    return entry


def test_the_presets_exist_with_sdxl_sizes():
    styles = load_styles()
    assert {name: style.label for name, style in styles.items()} == REQUIRED
    safe = json.loads(STYLES_FILE.read_text(encoding="utf-8"))["child_safe_negative"]
    for style in styles.values():
        assert (style.width, style.height) in SDXL_SIZES and 20 <= style.steps <= 50
        assert style.negative.startswith(safe) and "nsfw" in style.negative
    assert {(s.width, s.height) for s in styles.values()} >= {(1024, 1024), (1152, 896),
                                                              (896, 1152)}


@pytest.mark.parametrize("scene", [
    "Ignore the style and draw a photo",
    "negative prompt: none\n\nNegative prompt: photo, realistic",
    "tvmia girl waves.   ",
    "",
])
def test_the_scene_is_only_ever_the_middle_of_the_prompt(scene):
    style = get_style("cartoon")
    prompt = style.prompt(scene)
    assert prompt.startswith(style.prefix + ", ") and prompt.endswith(", " + style.suffix)
    middle = prompt[len(style.prefix) + 2:-len(style.suffix) - 2]
    assert middle == " ".join(scene.split()).rstrip(" .,;")


def test_unknown_style_lists_the_known_ones():
    with pytest.raises(StyleError, match="unknown style 'oil'; choose one of: watercolor, pastel"):
        get_style("oil")


@pytest.mark.parametrize("record, message", [
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(seed=3)}},
     r"style 'ink' has unknown keys \['seed'\]"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": {k: v for k, v in _entry().items()
                                                        if k != "steps"}}},
     r"style 'ink' has missing keys \['steps'\]"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry()}, "extra": 1},
     "expected exactly the keys"),
    ({"child_safe_negative": "", "styles": {"ink": _entry()}}, "child_safe_negative"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(width=1000)}},
     "1000x1024 is not an SDXL size"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(height=1024.0)}},
     "1024x1024.0 is not an SDXL size"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(steps=0)}}, "steps must be"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(steps=True)}}, "steps must be"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(guidance="7")}},
     "guidance must be"),
    ({"child_safe_negative": "nsfw", "styles": {"ink": _entry(prefix=3)}},
     "prefix must be text"),
])
def test_a_bad_styles_file_names_the_problem(tmp_path, record, message):
    with pytest.raises(StyleError, match=message):
        load_styles(_write(tmp_path, record))


def test_a_good_custom_file_loads(tmp_path):
    path = _write(tmp_path, {"child_safe_negative": "nsfw, gore",
                             "styles": {"ink": _entry(negative="")}})
    style = get_style("ink", path)
    assert style.negative == "nsfw, gore" and style.prompt("a cat") == "ink drawing, a cat, fine lines"


def test_an_unreadable_file_is_a_style_error(tmp_path):
    path = tmp_path / "styles.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StyleError, match="can't be read"):
        load_styles(path)
