import json

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pipeline import cli, draft
from pipeline.characters import Character, CharacterStore, Crop
from pipeline.draft import (Draft, DraftError, DraftPage, draft_story, generate, load_story_model,
                            parse_draft, story_messages)
from pipeline.models import ModelUnavailableError
from pipeline.settings import Settings
from pipeline.story import parse_story

SETTINGS = Settings()
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MIA = Character(name="Mia", slug="mia", kind="girl", description="curly red hair",
                trigger="tvmia", crops=(), created="")
REX = Character(name="Rex", slug="rex", kind="dog", description="", trigger="tvrex", crops=(),
                created="")
GOOD = {"pages": [{"text": "Mia finds a map.", "scene": "Mia holding a map in a garden"},
                  {"text": "Rex sniffs the way.", "scene": "Rex nose down on a path"}]}


@pytest.fixture(scope="session")
def tiny_story_model(tmp_path_factory):
    """A tiny random Qwen2 chat model with a byte-level tokenizer, built offline.

    It writes noise, not stories: it tests loading, the chat template and generation.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"],
                                        chat_template=CHATML)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-story-model")
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def story_settings(tiny_story_model, tmp_path):
    return Settings(story_model=str(tiny_story_model), device="cpu", data_dir=tmp_path / "data")


def test_clean_json_is_read():
    result = parse_draft(json.dumps(GOOD), 2, SETTINGS)
    assert result == Draft(pages=(DraftPage("Mia finds a map.", "Mia holding a map in a garden"),
                                  DraftPage("Rex sniffs the way.", "Rex nose down on a path")))


@pytest.mark.parametrize("answer", [
    "Sure! Here is your story:\n```json\n" + json.dumps(GOOD, indent=2) + "\n```\nEnjoy!",
    json.dumps(GOOD["pages"]),
    '{"pages": [{"text": "Mia finds a map.", "scene": "Mia holding a map in a garden",},'
    '{"Text": "Rex sniffs the way.", "SCENE": "Rex nose down on a path"},],}',
    '{"pages": [{"text": "Mia finds a map.",\n "scene": "Mia holding a map in a garden"}]}\n'
    '{"text": "Rex sniffs   the\nway.", "scene": "Rex nose down on a path"}',
])
def test_stray_output_is_repaired(answer):
    assert parse_draft(answer, 2, SETTINGS).pages == parse_draft(json.dumps(GOOD), 2,
                                                                  SETTINGS).pages


def test_an_answer_cut_off_keeps_the_whole_pages_before_the_cut():
    answer = json.dumps(GOOD)[:-30]
    result = parse_draft(answer, 3, SETTINGS)
    assert [p.text for p in result.pages] == ["Mia finds a map."]
    assert result.warnings == ("the model wrote 1 of the 3 pages asked for",)


def test_too_many_pages_keep_the_first_and_missing_scenes_use_the_text():
    pages = [{"text": f"Page {n}."} for n in range(1, 5)] + [{"text": 7}, {"scene": "no text"}]
    result = parse_draft(json.dumps({"pages": pages}), 2, SETTINGS)
    assert result.pages == (DraftPage("Page 1.", "Page 1."), DraftPage("Page 2.", "Page 2."))
    assert result.warnings == ("the model wrote 4 pages; the first 2 were kept",)


def test_one_page_asked_for_is_one_page_in_words(story_settings, monkeypatch):
    monkeypatch.setattr(draft, "generate", lambda *args: json.dumps(GOOD))
    progress = []
    result = draft_story(story_settings, "a map", [MIA], 1, on_progress=progress.append)
    assert result.warnings == ("the model wrote 2 pages; the first page was kept",)
    assert progress[-1].message == "1 page"
    assert "exactly 1 page.\n" in story_messages("a map", [MIA], 1)[1]["content"]


def test_an_overlong_page_is_kept_with_a_warning():
    small = Settings(max_page_chars=50)
    result = parse_draft(json.dumps([{"text": "x" * 51, "scene": "s"}]), 1, small)
    assert result.warnings == ("page 1 has 51 characters, past the limit of 50: "
                               "shorten it before illustrating",)


@pytest.mark.parametrize("answer", ["", "Once upon a time, Mia...", '{"pages": []}',
                                    '{"pages": [{"text": "  "}]}', "[1, 2, {]", "{" * 500])
def test_no_usable_page_is_a_clear_error(answer):
    with pytest.raises(DraftError, match="held no page in the expected JSON form"):
        parse_draft(answer, 2, SETTINGS)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet='[]{}":,\\ntexscp0 '),
                 st.integers(1, 3000).map(lambda n: "[" * n),
                 st.integers(1, 3000).map(lambda n: '{"pages": ' * n),
                 st.integers(1, 3000).map(lambda n: "[" * n + '{"text": "deep"}' + "]" * n)))
def test_any_answer_is_pages_or_a_draft_error(answer):
    try:
        parse_draft(answer, 3, SETTINGS)
    except DraftError:
        pass


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"text": st.text(), "scene": st.text()}), min_size=1,
                max_size=5))
def test_a_drafted_story_reads_back_as_the_same_pages(pages):
    try:
        result = parse_draft(json.dumps({"pages": pages}), 5, SETTINGS)
    except DraftError:
        return
    roomy = Settings(max_page_chars=10**6)
    parsed = parse_story(result.story_text(), [], roomy)
    assert [(p.text, p.scene) for p in parsed] == [(p.text, p.scene) for p in result.pages]


def test_a_draft_becomes_an_editable_story():
    result = parse_draft(json.dumps(GOOD), 2, SETTINGS)
    story = result.story_text()
    assert story == ("Mia finds a map.\nScene: Mia holding a map in a garden\n\n"
                     "Rex sniffs the way.\nScene: Rex nose down on a path\n")
    pages = parse_story(story, [MIA, REX], SETTINGS)
    assert [p.text for p in pages] == ["Mia finds a map.", "Rex sniffs the way."]
    assert pages[0].scene == "Mia holding a map in a garden"
    assert [p.characters for p in pages] == [("Mia",), ("Rex",)]


def test_the_request_names_premise_characters_and_pages():
    system, user = story_messages("a day at the sea", [MIA, REX], 6)
    assert system["role"] == "system" and "JSON" in system["content"]
    assert "Whatever the premise says" in system["content"] and "no violence" in system["content"]
    assert "exactly 6 pages" in user["content"] and "Premise: a day at the sea" in user["content"]
    assert "- Mia, a girl (curly red hair)\n- Rex, a dog\n" in user["content"]


def test_bad_requests_are_refused_before_loading_a_model():
    for premise, pages, message in (("  ", 3, "the premise is empty"),
                                    ("sea", 0, "pages must be from 1 to 40"),
                                    ("sea", 41, "pages must be from 1 to 40"),
                                    ("x" * 1001, 3, "premise has 1001 characters")):
        with pytest.raises(DraftError, match=message):
            draft_story(Settings(story_model="nobody/nothing"), premise, [MIA], pages)


def test_a_missing_story_model_names_its_setting(tmp_path):
    with pytest.raises(ModelUnavailableError, match="TALEWEAVER_STORY_MODEL=nobody/nothing"):
        draft_story(Settings(story_model="nobody/nothing", device="cpu"), "sea", [MIA], 1)


def test_the_tiny_model_loads_once_and_samples_reproducibly(story_settings):
    tokenizer, model = load_story_model(story_settings)
    assert load_story_model(story_settings)[1] is model
    messages = story_messages("a day at the sea", [MIA], 1)
    first = generate(story_settings, messages, 40, seed=1)
    assert first == generate(story_settings, messages, 40, seed=1)
    assert first != generate(story_settings, messages, 40, seed=2)
    # A random model writes noise: drafting says so plainly rather than crashing.
    with pytest.raises(DraftError, match="held no page"):
        draft_story(story_settings, "a day at the sea", [MIA], 1)


def test_draft_story_returns_the_models_pages(story_settings, monkeypatch):
    asked = []

    def answer(settings, messages, max_new_tokens, seed):
        asked.append((messages, max_new_tokens, seed))
        return "```json\n" + json.dumps(GOOD) + "\n```"

    monkeypatch.setattr(draft, "generate", answer)
    progress = []
    result = draft_story(story_settings, "a map", [MIA, REX], 2, seed=5,
                         on_progress=progress.append)
    assert [p.text for p in result.pages] == ["Mia finds a map.", "Rex sniffs the way."]
    assert asked == [(story_messages("a map", [MIA, REX], 2), 64 + 2 * draft.TOKENS_PER_PAGE, 5)]
    assert progress[-1].done == progress[-1].total == 1


def test_cli_drafts_a_story(story_settings, monkeypatch, capsys):
    from PIL import Image

    store = CharacterStore(story_settings, "alice")
    crop = (Image.new("RGB", (64, 64)), Crop("", (64, 64), (0, 0, 64, 64), "a.png"))
    store.create("Mia", "girl", "curly red hair", "tvmia", [crop])
    monkeypatch.setenv("TALEWEAVER_STORY_MODEL", story_settings.story_model)
    monkeypatch.setenv("TALEWEAVER_DEVICE", "cpu")
    monkeypatch.setattr(draft, "generate", lambda *args: json.dumps(GOOD["pages"][:1]))
    code = cli.main(["draft-story", "--premise", "a map", "--characters", "Mia", "--pages", "2",
                     "--data-dir", str(story_settings.data_dir), "--user", "alice"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "Mia finds a map.\nScene: Mia holding a map in a garden\n\n"
    assert "warning: the model wrote 1 of the 2 pages asked for" in err
    code = cli.main(["draft-story", "--premise", "a map", "--characters", "Mia,Zed",
                     "--pages", "2", "--data-dir", str(story_settings.data_dir), "--user", "alice"])
    assert code == 1 and "no character named 'Zed'" in capsys.readouterr().err
