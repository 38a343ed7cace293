"""app.py through gradio_client: the app launched in-process on 127.0.0.1 with the tiny model,
sign-in required, and two API users (fake tokens for "alice" and "bob", whoami faked).

One app serves the whole module. Alice makes a character from real face photos, trains it a
few steps, writes a 3-page story, illustrates it at 64x64 in 2 steps and downloads the PDF;
Bob tries to reach her characters and books every way the API allows.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402
from pypdf import PdfReader  # noqa: E402
from served import served_app  # noqa: E402

from pipeline import draft  # noqa: E402
from pipeline.actions import training
from pipeline.book import BookStore  # noqa: E402
from pipeline.characters import CharacterStore  # noqa: E402
from pipeline.hub import calls as hub_calls
from pipeline.hub import repos as hub
from pipeline.hub import tokens as hub_tokens  # noqa: E402
from pipeline.models import ModelUnavailableError  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKENS = {"hf_alice_fake_token": "alice", "hf_bob_fake_token": "bob",
          "hf_carol_fake_token": "carol"}
ALICE, BOB, CAROL = list(TOKENS)
STORY = """Mia woke up early and looked at the sea.

Mia built a sandcastle with a red flag.
Scene: Mia on the beach next to a big sandcastle with a red flag

That night Mia dreamed of boats."""
TRAINING = '{"prior_preservation": false, "validation": "on", "validation_steps": 2}'
TINY = (64, 64, 2)  # width, height, steps of every picture drawn here
REQUIRED = {"/add_character", "/list_characters", "/delete_character", "/train_character",
            "/draft_story", "/illustrate_book", "/illustrate_page", "/export_book",
            "/list_books", "/delete_book"}


class FakeWhoami:
    """The Hub's whoami for the two fake tokens; any other token is refused (401)."""

    calls = 0

    def whoami(self, token=None, **_):
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import httpx

        FakeWhoami.calls += 1
        if token not in TOKENS:
            response = httpx.Response(401, request=httpx.Request("GET", "https://hf.co/api"))
            raise HfHubHTTPError("401 Client Error.", response=response)
        return {"name": TOKENS[token], "type": "user"}


@pytest.fixture(scope="module")
def served(tiny_model_dir, tiny_safety_dir, tmp_path_factory):
    """(url, settings): the app with sign-in required, launched once for the module."""
    settings = Settings(base_model=str(tiny_model_dir), vae="", device="cpu", resolution=64,
                        data_dir=tmp_path_factory.mktemp("app") / "data",
                        require_login="always", redraw_tries=0,
                        safety_model=str(tiny_safety_dir))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub_calls, "hf_api", FakeWhoami)
        patch.setattr(hub_tokens, "_token_users", {})
        with served_app(settings) as url:
            yield url, settings


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


def client(served, downloads, token=None) -> Client:
    """An API client of the app: `token` says who it is (oauth_token) and lets it upload."""
    return Client(served[0], token=token, oauth_token=token, verbose=False,
                  download_files=downloads, analytics_enabled=False)


def call(api: Client, *args, api_name: str):
    """The endpoint's result, and every progress line it showed while running."""
    job = api.submit(*args, api_name=api_name)
    lines = []
    while not job.done():
        status = job.status()
        if status.progress_data:
            lines += [unit.desc for unit in status.progress_data if unit.desc]
        time.sleep(0.02)
    return job.result(), lines


@pytest.fixture(scope="module")
def alice_book(served, downloads, face_photos):
    """Alice's whole flow through the API; returns what each step answered."""
    api = client(served, downloads, ALICE)
    added, add_progress = call(api, "Mia", "girl", "curly red hair",
                               [handle_file(p) for p in face_photos[:3]], False,
                               api_name="/add_character")
    estimate = api.predict("Mia", "person", 4, TRAINING, api_name="/estimate_training")
    trained, train_progress = call(api, "Mia", "person", 4, TRAINING,
                                   api_name="/train_character")
    book = api.predict("Mia at the Sea", STORY, "pastel", 7, api_name="/new_book")
    illustrated, _ = call(api, book["id"], 2, *TINY, api_name="/illustrate_book")
    return dict(api=api, added=added, add_progress=add_progress, estimate=estimate,
                trained=trained, train_progress=train_progress, book=book,
                illustrated=illustrated)


def test_importing_the_app_builds_the_ui_and_loads_no_model():
    code = ("import sys, time; t = time.perf_counter(); import app; "
            "from pipeline import models; "
            "print(len(models._cache), 'torch' in sys.modules, 'diffusers' in sys.modules, "
            "len(app.demo.fns), round(time.perf_counter() - t, 2))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALEWEAVER_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    cached, torch_loaded, diffusers_loaded, events, seconds = out
    assert (cached, torch_loaded, diffusers_loaded) == ("0", "False", "False")
    assert int(events) > 20
    print(f"import app: {seconds} s")


def test_the_api_page_lists_the_endpoints_with_descriptions(served, downloads):
    endpoints = client(served, downloads).view_api(print_info=False,
                                                   return_format="dict")["named_endpoints"]
    assert REQUIRED <= set(endpoints)
    assert set(endpoints) - REQUIRED == {"/estimate_training", "/push_adapter", "/new_book",
                                         "/choose_candidate", "/get_book", "/rescore_book",
                                         "/estimate_drawing", "/set_page_order",
                                         "/train_on_jobs", "/cancel_job", "/job_status",
                                         "/jobs_hardware", "/edit_page_text", "/insert_page",
                                         "/delete_page", "/move_page", "/edit_book",
                                         "/add_photos", "/change_character", "/try_character",
                                         "/current_work", "/cancel_work"}
    for name, endpoint in endpoints.items():
        assert endpoint["description"], name
        assert endpoint["oauth_token"] == "optional", name
        for parameter in endpoint["parameters"]:  # each Args entry, typed, shows on the page
            assert f"\n• {parameter['parameter_name']}: " in endpoint["description"], name
            assert "Literal[]" not in parameter["python_type"]["type"], name
            assert parameter["example_input"] is not None, name
            assert not parameter["label"].startswith("parameter_"), name
    names = [p["parameter_name"] for p in endpoints["/illustrate_page"]["parameters"]]
    assert names == ["book_id", "page", "scene", "seed", "candidates", "width", "height", "steps",
                     "face_pass"]
    assert ("\n• delete_hub_repo: also delete its private Hub repo; that goes first, and if it "
            "fails nothing is deleted\n") in endpoints["/delete_character"]["description"] + "\n"
    assert endpoints["/draft_story"]["parameters"][1]["python_type"]["type"] == "list[str]"
    # The photo limits are the server's own numbers, as everywhere else.
    assert endpoints["/add_character"]["description"].startswith(
        "Make a character from 3 to 20 photos of one person or pet")
    assert "(up to 20 photos in all)" in endpoints["/add_photos"]["description"]
    names = [p["parameter_name"] for p in endpoints["/try_character"]["parameters"]]
    assert names == ["name", "scene", "adapter_weight", "seed", "style"]


def test_long_events_show_their_progress_bar_where_the_page_shows_it(served):
    import gradio as gr

    import app

    demo = app.build_ui(served[1])
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    for name in ("add_character", "add_photos", "change_character", "train_character",
                 "train_on_jobs", "push_adapter", "try_character", "draft_story", "new_book",
                 "illustrate_book", "illustrate_page", "export_book"):
        shown = [demo.blocks[i] for i in events[name]["show_progress_on"] or []]
        shown = [block for block in shown if block.visible]
        assert shown, name  # not only on its own outputs, which are hidden
        for block in shown:
            if isinstance(block, gr.Markdown):  # an empty line would hide the bar
                assert block.min_height, name


def test_the_whole_flow(alice_book, served, downloads):
    api, settings = alice_book["api"], served[1]
    assert [p["accepted"] for p in alice_book["added"]["photos"]] == [True] * 3
    assert any(line.startswith("photo ") for line in alice_book["add_progress"])
    assert "4 steps" in alice_book["estimate"]["text"]
    assert alice_book["estimate"]["config"]["steps"] == 4

    trained = alice_book["trained"]
    assert trained["done"] and trained["step"] == trained["total"] == 4
    assert "adapter_dir" not in trained
    assert (trained["hub"]["status"], trained["hub"]["reason"]) == ("skipped", "offline")
    assert trained["hub"]["message"] == ("Upload skipped: the Hub is switched off here (offline "
                                         "mode). Mia's adapter is safe on this machine.")
    assert any(re.match(r"step \d/4 · loss \d", line) for line in alice_book["train_progress"])
    # The tiny model draws noise: the likeness engine finds no face of Mia on it, and says so.
    assert trained["validation"] == {
        "drawn": True, "worked": False, "likeness": trained["validation"]["likeness"],
        "text": "Validation image: Mia: not found on this picture: the adapter may not have "
                "learned the face yet: try more steps, or more and clearer photos."}
    assert trained["validation"]["likeness"]["found"] is False
    assert "descriptor" not in trained["validation"]["likeness"]
    assert api.predict("mia", api_name="/push_adapter") == trained["hub"]
    [mia] = api.predict(api_name="/list_characters")
    assert (mia["name"], mia["photos"], mia["trained"]) == ("Mia", 3, True)

    assert alice_book["book"]["waiting"] == []  # Mia is trained: every page can be drawn
    book = alice_book["illustrated"]
    assert len(book["pages"]) == 3 and all(p["image"] for p in book["pages"])
    assert all(len(p["candidates"]) == 2 for p in book["pages"])
    assert book["pages"][1]["characters"] == ["Mia"]
    assert book["pages"][1]["scene"] == "Mia on the beach next to a big sandcastle with a red flag"
    # every picture scored against Mia's photos (the tiny model draws noise: no face on it)
    assert book["pages"][1]["likeness"] == ["Mia: not found on this picture"]
    assert book["likeness"] == {"consistency": {"Mia": None}, "weakest": 0, "scored_pages": 3}
    assert f"{mia['trigger']} girl (curly red hair) on the beach" in book["pages"][1]["prompt"]

    redrawn = api.predict(book["id"], 3, "Mia asleep in a boat", 99, 1, *TINY,
                          api_name="/illustrate_page")
    assert redrawn["pages"][2]["scene"].endswith("asleep in a boat")
    assert len(redrawn["pages"][2]["candidates"]) == 3
    chosen = api.predict(book["id"], 3, 2, api_name="/choose_candidate")
    assert chosen["pages"][2]["image"] == chosen["pages"][2]["candidates"][1]["file"]
    assert api.predict(book["id"], api_name="/get_book") == chosen

    pdf = Path(api.predict(book["id"], "pdf", False, api_name="/export_book"))
    assert pdf.name == "mia-at-the-sea.pdf" and pdf.is_relative_to(downloads)
    assert len(PdfReader(pdf).pages) == 5  # the cover, three pages and the back cover
    html = Path(api.predict(book["id"], "html", False, api_name="/export_book"))
    assert "Mia at the Sea" in html.read_text(encoding="utf-8")
    [listed] = api.predict(api_name="/list_books")
    assert (listed["id"], listed["pages"], listed["illustrated"]) == (book["id"], 3, 3)
    assert BookStore(settings, "alice").get(book["id"]).page(3).image == \
        chosen["pages"][2]["image"]


def test_pushes_use_the_callers_own_token_and_send_the_validation_image_only_when_asked(
        alice_book, monkeypatch):
    asked = []

    def push(settings, user, character, token, *, include_validation_image=False):
        asked.append((user, character.name, token, include_validation_image))
        return hub.HubResult("skipped", "", "", "offline", reason="offline")

    monkeypatch.setattr(training, "push_adapter", push)
    alice_book["api"].predict("mia", api_name="/push_adapter")
    alice_book["api"].predict("mia", True, api_name="/push_adapter")
    assert asked == [("alice", "Mia", ALICE, False), ("alice", "Mia", ALICE, True)]


def test_a_story_is_drafted_by_the_story_model(alice_book, monkeypatch):
    answer = {"pages": [{"text": "Mia finds a map.", "scene": "Mia holding a map"},
                        {"text": "Mia follows it.", "scene": "Mia on a path"}]}
    monkeypatch.setattr(draft, "load_story_model", lambda settings: None)
    monkeypatch.setattr(draft, "generate", lambda *args: json.dumps(answer))
    drafted = alice_book["api"].predict("a treasure hunt", ["Mia"], 2, 0,
                                        api_name="/draft_story")
    assert drafted["story"] == ("Mia finds a map.\nScene: Mia holding a map\n\n"
                                "Mia follows it.\nScene: Mia on a path\n")
    assert drafted["warnings"] == []


def test_a_missing_story_model_tells_the_parent_what_to_do_instead(alice_book, monkeypatch):
    def unavailable(settings):
        raise ModelUnavailableError("TALEWEAVER_STORY_MODEL=qwen could not be loaded")

    monkeypatch.setattr(draft, "load_story_model", unavailable)
    with pytest.raises(AppError) as refused:
        alice_book["api"].predict("a treasure hunt", ["Mia"], 2, 0, api_name="/draft_story")
    message = str(refused.value)  # the operator's detail goes to the server's log only
    assert "write the story yourself" in message and "TALEWEAVER_STORY_MODEL" not in message
    assert "qwen" not in message


def test_errors_arrive_as_messages(alice_book, tmp_path, face_photos):
    api = alice_book["api"]
    (tmp_path / "shopping.jpg").write_text("eggs, milk")
    photos = [face_photos[3], tmp_path / "shopping.jpg", face_photos[3]]
    with pytest.raises(AppError) as refused:
        api.predict("Leo", "boy", "", [handle_file(p) for p in photos], False,
                    api_name="/add_character")
    message = str(refused.value)
    assert "only 1 of 3 photos can be used" in message and "nothing was saved" in message
    assert "shopping.jpg" in message and "wide.png" in message and "same file" in message
    with pytest.raises(AppError, match="no book with id 'feedfacefeedface'"):
        api.predict("feedfacefeedface", api_name="/get_book")
    with pytest.raises(AppError, match="more training settings: not valid JSON"):
        api.predict("Mia", "person", 4, "{rank: 4}", api_name="/estimate_training")
    books = api.predict(api_name="/list_books")
    with pytest.raises(AppError) as refused:
        api.predict("T", "Mia.", "crayon", -1, api_name="/new_book")
    assert str(refused.value) == ("unknown style 'crayon'; choose one of: watercolor, pastel, "
                                  "cartoon, pencil, 3d, papercut")
    # gradio shows an error as HTML: a title quoted in one is only ever text
    html_title = api.predict("<h1>Big</h1> & <img src=x>", "Mia.", "pastel", 1,
                             api_name="/new_book")
    with pytest.raises(AppError) as refused:
        api.predict(html_title["id"], "pdf", False, api_name="/export_book")
    assert str(refused.value).startswith("'&lt;h1&gt;Big&lt;/h1&gt; &amp; &lt;img src=x&gt;': "
                                         "page 1 not illustrated yet")
    api.predict(html_title["id"], api_name="/delete_book")
    assert api.predict(api_name="/list_books") == books
    assert [c["name"] for c in api.predict(api_name="/list_characters")] == ["Mia"]


def test_bob_cannot_reach_alices_characters_or_books(alice_book, served, downloads):
    url, settings = served
    book_id = alice_book["book"]["id"]
    bob = client(served, downloads, BOB)
    assert bob.predict(api_name="/list_characters") == []
    assert bob.predict(api_name="/list_books") == []
    refused = {
        "/get_book": (book_id,), "/export_book": (book_id, "pdf", False),
        "/illustrate_book": (book_id, 1, *TINY), "/delete_book": (book_id,),
        "/illustrate_page": (book_id, 1, "", -1, 1, *TINY),
        "/choose_candidate": (book_id, 1, 1), "/rescore_book": (book_id,),
        "/estimate_drawing": (book_id, 1, *TINY), "/set_page_order": (book_id, 1, "Mia"),
    }
    for name, args in refused.items():
        with pytest.raises(AppError, match=f"no book with id '{book_id}'"):
            bob.predict(*args, api_name=name)
    for name, args in {"/train_character": ("Mia", "person", 4, TRAINING),
                       "/estimate_training": ("Mia", "", 0, ""),
                       "/delete_character": ("Mia", False), "/push_adapter": ("mia",),
                       "/draft_story": ("a day out", ["Mia"], 2, 0)}.items():
        with pytest.raises(AppError, match="no character named '(Mia|mia)'; your characters: "
                                           "none yet"):
            bob.predict(*args, api_name=name)
    for guess in ("../alice", "../../users/alice/books/" + book_id):
        with pytest.raises(AppError, match="is not a book id"):
            bob.predict(guess, api_name="/get_book")

    own = bob.predict("Bob's Mia", "Mia went out.", "pastel", 1, api_name="/new_book")
    assert own["pages"][0]["characters"] == [] and own["pages"][0]["scene"] == "Mia went out."
    assert [b["id"] for b in bob.predict(api_name="/list_books")] == [own["id"]]
    assert [b["id"] for b in alice_book["api"].predict(api_name="/list_books")] == [book_id]
    assert CharacterStore(settings, "alice").get("Mia").name == "Mia"


def test_no_file_of_the_data_folder_is_served(alice_book, served):
    url, settings = served
    book = BookStore(settings, "alice").get(alice_book["book"]["id"])
    secret = [BookStore(settings, "alice").image_path(book, book.page(1).image),
              CharacterStore(settings, "alice").folder(CharacterStore(settings, "alice")
                                                        .get("Mia")) / "crops" / "01.png"]
    for path in secret:
        assert path.is_file()
        assert httpx.get(f"{url.rstrip('/')}/gradio_api/file={path}").status_code == 403


def test_uploaded_photos_leave_the_server_once_a_character_is_made(
        served, downloads, face_photos, tmp_path):
    """After a refusal they stay in gradio's cache (swept within the hour), so that the app can
    send the same photos again once the parent has fixed the one problem."""
    from gradio.utils import get_upload_folder

    api = client(served, downloads, CAROL)
    prefix = f"carol-{os.getpid()}-"  # no other upload (other test runs included) has it
    photos = []
    for index, source in enumerate(face_photos[:3]):
        photos.append(tmp_path / f"{prefix}{index}{source.suffix}")
        photos[-1].write_bytes(source.read_bytes())
    (tmp_path / f"{prefix}shopping.jpg").write_text("eggs, milk")
    uploads = Path(get_upload_folder())

    added = api.predict("Ada", "girl", "", [handle_file(p) for p in photos], False,
                        api_name="/add_character")
    assert [p["accepted"] for p in added["photos"]] == [True] * 3
    assert list(uploads.glob(f"*/{prefix}*")) == []
    with pytest.raises(AppError, match="only 1 of 3 photos can be used"):
        api.predict("Bea", "girl", "", [handle_file(p) for p in (
            photos[0], tmp_path / f"{prefix}shopping.jpg", photos[0])], False,
            api_name="/add_character")
    assert len(list(uploads.glob(f"*/{prefix}*"))) == 2  # kept for another try
    assert all(p.is_file() for p in photos)  # the caller's own files are theirs
    assert [c["name"] for c in api.predict(api_name="/list_characters")] == ["Ada"]


def test_only_files_inside_gradios_upload_cache_are_forgotten(tmp_path, monkeypatch):
    from ui.common import forget_uploads

    cache, elsewhere = tmp_path / "gradio", tmp_path / "data"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    (cache / "0a1b").mkdir(parents=True)
    elsewhere.mkdir()
    upload, kept = cache / "0a1b" / "mia.jpg", elsewhere / "crop.png"
    upload.write_bytes(b"photo")
    kept.write_bytes(b"crop")
    (cache / "0a1b" / "link.png").symlink_to(kept)

    forget_uploads([str(upload), str(kept), str(cache / "0a1b" / "link.png"),
                    str(cache / ".." / "data" / "crop.png"), str(cache), str(upload)])

    assert not upload.exists() and kept.read_bytes() == b"crop"
    assert (cache / "0a1b" / "link.png").is_symlink()


def test_without_a_token_or_with_a_wrong_one_nothing_is_answered(served, downloads):
    with pytest.raises(AppError, match="Please sign in with Hugging Face"):
        client(served, downloads).predict(api_name="/list_books")
    with pytest.raises(AppError, match="401 Unauthorized"):
        client(served, downloads, "hf_guessed_token").predict(api_name="/list_characters")


def test_deleting_a_book_and_a_character(alice_book, served, downloads):
    api, settings = client(served, downloads, ALICE), served[1]
    scratch = api.predict("Scratch", "One page.", "pastel", 1, api_name="/new_book")
    assert api.predict(scratch["id"], api_name="/delete_book") == {
        "deleted": scratch["id"], "title": "Scratch"}
    with pytest.raises(AppError, match="no book with id"):
        api.predict(scratch["id"], api_name="/get_book")

    from conftest import make_crops

    CharacterStore(settings, "alice").create("Rex", "dog", "", "zwx", make_crops(3, 64, seed=5))
    assert api.predict("rex", False, api_name="/delete_character") == {
        "deleted": "Rex", "slug": "rex", "hub": None, "books": []}
    assert [c["name"] for c in api.predict(api_name="/list_characters")] == ["Mia"]
    with pytest.raises(AppError) as kept:
        api.predict("Mia", True, api_name="/delete_character")
    assert str(kept.value) == (
        "Mia's Hub repo was not deleted: the Hub is switched off here (offline mode). Nothing "
        "was deleted. You can delete the repo on huggingface.co (its settings page), then here "
        'with "Also delete its private Hugging Face repo" unticked.')
    assert [c["name"] for c in api.predict(api_name="/list_characters")] == ["Mia"]


def test_the_sign_in_button_appears_only_where_sign_in_works(monkeypatch, tmp_path):
    import app

    settings = Settings(data_dir=tmp_path / "data", require_login="auto")
    for key in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID"):
        monkeypatch.delenv(key, raising=False)
    assert not app.build_ui(settings).expects_oauth
    assert not app.build_ui(dataclasses.replace(settings, require_login="always")).expects_oauth
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "someone/taleweaver")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    import gradio.oauth  # what a Space with hf_oauth sets; gradio reads it when imported

    for name, value in (("OAUTH_CLIENT_ID", "client-id"), ("OAUTH_CLIENT_SECRET", "secret"),
                        ("OAUTH_SCOPES", "openid profile contribute-repos"),
                        ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(gradio.oauth, name, value)
    assert app.build_ui(settings).expects_oauth


def progress_lines(job) -> list[str]:
    status = job.status()
    return [unit.desc for unit in status.progress_data or [] if unit.desc]


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def held_adapters(settings) -> set:
    """The adapters some running call holds in the shared pipeline (idle cached ones, which
    are switched off, don't count)."""
    from pipeline import adapters, models

    pipe = models.load_pipeline(settings)
    with models.pipeline_lock():
        return {name for name, holders in adapters._cached.get(pipe, {}).items() if holders}


def test_a_cancelled_book_stops_at_its_next_page_and_the_next_users_page_finds_it_clean(
        alice_book, served, downloads, monkeypatch):
    from pipeline import illustrate, turns

    api, settings = alice_book["api"], served[1]
    first_page, go_on = threading.Event(), threading.Event()
    drawn = []  # (whose prompt, adapters loaded when its page started)
    real_render = illustrate.render

    def render(settings_, job, **kwargs):
        drawn.append((job.prompt, held_adapters(settings_)))
        if len(drawn) == 1:
            first_page.set()
            assert go_on.wait(60)
        return real_render(settings_, job, **kwargs)

    monkeypatch.setattr(illustrate, "render", render)
    story = "\n\n".join(f"Mia on page {n}." for n in range(1, 6))
    book = api.predict("Five pages", story, "pastel", 3, api_name="/new_book")
    job = api.submit(book["id"], 1, *TINY, api_name="/illustrate_book")
    assert first_page.wait(60)

    bob = client(served, downloads, BOB)
    asked = time.monotonic()
    listed = bob.predict(api_name="/list_books")  # a listing never waits behind the GPU
    assert time.monotonic() - asked < 5 and book["id"] not in [b["id"] for b in listed]
    waiting = api.submit(book["id"], 2, "", -1, 1, *TINY, api_name="/illustrate_page")
    wait_until(lambda: any("waiting for the GPU (1 ahead)" in line
                           for line in progress_lines(waiting)))
    with pytest.raises(AppError, match="you already have 2 .* running or waiting"):
        api.predict(book["id"], 3, "", -1, 1, *TINY, api_name="/illustrate_page")
    waiting.cancel()
    job.cancel()
    go_on.set()

    own = bob.predict("Bob's day", "A quiet day.", "pastel", 1, api_name="/new_book")
    bobs = BookStore(settings, "bob")

    def page_pixels() -> np.ndarray:
        book_ = bobs.get(own["id"])
        with Image.open(bobs.image_path(book_, book_.page(1).image)) as image:
            return np.asarray(image.convert("RGB"))

    bob.predict(own["id"], 1, "", 5, 1, *TINY, api_name="/illustrate_page")
    right_after = page_pixels()
    wait_until(lambda: not turns.GPU._jobs)
    stored = BookStore(settings, "alice").get(book["id"])
    # it stopped in page 1 (at its next denoising step) or right after it, never later
    assert not any(page.illustrated for page in stored.pages[1:])
    assert len(drawn) == 2 and "quiet day" in drawn[1][0]  # no page of alice's after the cancel
    assert drawn[1][1] == set() and held_adapters(settings) == set()  # clean for bob
    bob.predict(own["id"], 1, "", 5, 1, *TINY, api_name="/illustrate_page")
    assert np.array_equal(right_after, page_pixels())  # the same seed, the same picture
    assert len(drawn) == 3


def test_wrong_types_and_huge_values_are_refused_naming_the_field(alice_book, served,
                                                                  downloads):
    api, book_id = alice_book["api"], alice_book["book"]["id"]
    refused = [
        (("abc", 1, *TINY), "/illustrate_book", "book_id: expected text|no book with id"),
        ((book_id, "two", *TINY), "/illustrate_book", "candidates: expected a number"),
        ((book_id, 10 ** 9, *TINY), "/illustrate_book", "candidates"),
        ((book_id, 1, 64, 64, 10 ** 9), "/illustrate_book", "steps"),
        ((book_id, 10 ** 12, "", -1, 1, *TINY), "/illustrate_page",
         "page: expected a whole number from 1 to 40"),
        ((123,), "/get_book", "book_id: expected text, got 123"),
        ((["Mia"], "person", 0, ""), "/estimate_training", "name: expected text"),
        (("Mia", "person", 10 ** 9, ""), "/estimate_training", "steps=1000000000 is invalid"),
        (("Mia", "person", 0, '{"batch_size": 100000}'), "/estimate_training", "batch_size"),
        (("Mia", "person", 0, '{"learning_rate": "fast"}'), "/estimate_training",
         "learning_rate='fast' is invalid"),
        (("Mia", "yes"), "/delete_character", "delete_hub_repo: expected true or false"),
        ((["a", "b"], "girl", "", [], False), "/add_character", "name: expected text"),
        (("T", 42, "pastel", -1), "/new_book", "story: expected text"),
        (("T", "A day.", "pastel", "x"), "/new_book", "seed: expected a number"),
        ((book_id, "exe", False), "/export_book", "format"),
    ]
    for args, name, message in refused:
        with pytest.raises(AppError, match=message):
            api.predict(*args, api_name=name)
    assert [c["name"] for c in api.predict(api_name="/list_characters")] == ["Mia"]


def test_uploads_need_sign_in_where_it_is_required_and_respect_the_size_limit(served):
    url = served[0].rstrip("/") + "/gradio_api/upload"
    photo = {"files": ("mia.jpg", b"\xff\xd8 not much of a photo", "image/jpeg")}
    refused = httpx.post(url, files=photo)
    assert refused.status_code == 401 and "sign in with Hugging Face" in refused.text
    guessed = httpx.post(url, files=photo, headers={"x-hf-authorization": "Bearer hf_guess"})
    assert guessed.status_code == 401 and "401 Unauthorized" in guessed.text
    taken = httpx.post(url, files=photo, headers={"x-hf-authorization": f"Bearer {ALICE}"})
    assert taken.status_code == 200 and len(taken.json()) == 1
    limit = served[1].max_upload_bytes
    too_big = {"files": ("big.jpg", b"\0" * (limit + 1), "image/jpeg")}
    refused = httpx.post(url, files=too_big, headers={"x-hf-authorization": f"Bearer {ALICE}"})
    assert refused.status_code == 413  # gradio's max_file_size, while it reads


def test_a_full_disk_says_so_and_leaves_nothing_half_written(alice_book, served, monkeypatch):
    import errno

    from pipeline import store

    api, settings = alice_book["api"], served[1]
    books = api.predict(api_name="/list_books")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", no_space)
    with pytest.raises(AppError) as refused:
        api.predict("Full", "A day.", "pastel", 1, api_name="/new_book")
    assert str(refused.value) == "the server's disk is full: nothing was saved. Try again later."
    monkeypatch.undo()
    assert api.predict(api_name="/list_books") == books
    leftovers = [p for p in (settings.data_dir / "users" / "alice").rglob("*") if
                 p.name.endswith(".tmp")]
    assert leftovers == []


def test_an_unexpected_failure_gets_a_reference_and_no_server_detail(alice_book, served,
                                                                    monkeypatch, caplog):
    from pipeline.actions import books

    api, settings = alice_book["api"], served[1]
    secret = settings.data_dir / "users" / "alice" / "nowhere.json"
    monkeypatch.setattr(books, "list_books", lambda s, user: json.loads(secret.read_text()))
    with pytest.raises(AppError) as refused:
        api.predict(api_name="/list_books")
    message = str(refused.value)
    assert message.startswith("something went wrong on the server (reference ")
    assert str(settings.data_dir) not in message and "nowhere" not in message
    reference = re.search(r"reference (\w+)", message).group(1)
    assert any(reference in record.getMessage() for record in caplog.records)  # in the log


def test_damaged_characters_and_books_are_listed_and_their_owner_can_delete_them(
        alice_book, served, downloads):
    from conftest import make_crops

    api, settings = alice_book["api"], served[1]
    characters = CharacterStore(settings, "alice")
    zed = characters.create("Zed", "boy", "", "qqzx", make_crops(3, 64, seed=9))
    (characters.folder(zed) / "character.json").write_text("{not json")
    scrap = api.predict("Scrap", "A day.", "pastel", 1, api_name="/new_book")
    (BookStore(settings, "alice").folder(scrap["id"]) / "book.json").write_text('["a list"]')

    listed = api.predict(api_name="/list_characters")
    assert [(c["name"], c["damaged"]) for c in listed] == [("Mia", False), ("zed", True)]
    assert [(b["id"], b["damaged"]) for b in api.predict(api_name="/list_books")
            if b["damaged"]] == [(scrap["id"], True)]
    with pytest.raises(AppError, match="zed's record is damaged and can't be read; delete"):
        api.predict("zed", "person", 0, "", api_name="/estimate_training")
    with pytest.raises(AppError, match=f"book {scrap['id']} is damaged"):
        api.predict(scrap["id"], api_name="/get_book")
    bob = client(served, downloads, BOB)  # nobody else sees or deletes them
    assert bob.predict(api_name="/list_characters") == []
    with pytest.raises(AppError, match="no character named 'zed'"):
        bob.predict("zed", False, api_name="/delete_character")

    assert api.predict("Zed", False, api_name="/delete_character")["deleted"] == "Zed"
    assert not characters.folder(zed).exists()
    assert api.predict(scrap["id"], api_name="/delete_book")["deleted"] == scrap["id"]
    assert not any(b["damaged"] for b in api.predict(api_name="/list_books"))
    assert [c["name"] for c in api.predict(api_name="/list_characters")] == ["Mia"]


def test_cancelled_training_stops_at_the_next_step_with_a_checkpoint(alice_book, served):
    from conftest import make_crops

    from pipeline.adapter_files import CHECKPOINT_DIR
    from pipeline.training.checkpoint import PROGRESS_FILE

    api, settings = alice_book["api"], served[1]
    store = CharacterStore(settings, "alice")
    leo = store.create("Leo", "boy", "", "qqlx", make_crops(3, 64, seed=4))
    options = '{"prior_preservation": false, "validation_steps": 2, "rank": 4}'
    job = api.submit("Leo", "person", 1000, options, api_name="/train_character")
    wait_until(lambda: any(re.match(r"step [1-9]\d*/1000", line)
                           for line in progress_lines(job)), 120)
    job.cancel()
    saved = store.path(leo, CHECKPOINT_DIR) / PROGRESS_FILE
    wait_until(lambda: saved.is_file(), 60)
    step = json.loads(saved.read_text())["step"]
    time.sleep(1.0)
    assert json.loads(saved.read_text())["step"] == step < 1000  # stopped, not going on
    from pipeline import turns

    wait_until(lambda: not turns.GPU._jobs)


def test_a_book_is_changed_once_made_and_exported_to_print(alice_book, served, downloads):
    api = alice_book["api"]
    book = api.predict("Edits", "Mia woke up.\n\nThe sea was calm.\n\nMia swam.", "pastel", 3,
                       api_name="/new_book")
    book, _ = call(api, book["id"], 1, *TINY, api_name="/illustrate_book")
    first = book["pages"][0]["image"]

    edited = api.predict(book["id"], 1, "The sun came up.", api_name="/edit_page_text")
    assert edited["book"]["pages"][0]["image"] == first
    assert edited["message"] == ("Page 1 now shows nobody (before: Mia): redraw it so that its "
                                 "picture matches.")
    edited = api.predict(book["id"], 1, "Mia ran to the water.", api_name="/insert_page")
    assert edited["message"] == "Page 2 is new (Mia on it) and has no picture yet."
    edited = api.predict(book["id"], 4, 1, api_name="/move_page")
    assert [p["text"] for p in edited["book"]["pages"]] == [
        "Mia swam.", "The sun came up.", "Mia ran to the water.", "The sea was calm."]
    assert edited["book"]["pages"][1]["image"] == first and edited["message"] == \
        "Page 4 is now page 1."
    edited = api.predict(book["id"], 3, api_name="/delete_page")
    assert edited["message"] == "Deleted page 3." and len(edited["book"]["pages"]) == 3
    edited = api.predict(book["id"], "For Mia, on her fourth birthday - love, Grandma",
                         "The end.", "en", api_name="/edit_book")
    assert (edited["book"]["dedication"], edited["book"]["closing"],
            edited["book"]["language"]) == ("For Mia, on her fourth birthday - love, Grandma",
                                            "The end.", "en")
    kept = api.predict(book["id"], None, "", None, api_name="/edit_book")["book"]
    assert (kept["dedication"], kept["closing"], kept["language"]) == (
        "For Mia, on her fourth birthday - love, Grandma", "", "en")

    pdf = Path(api.predict(book["id"], "pdf", False, "8x10", True, api_name="/export_book"))
    assert pdf.name == "edits-8x10-bleed.pdf"
    reader = PdfReader(pdf)
    assert len(reader.pages) == 6  # cover, dedication, three pages, back cover
    assert [float(v) for v in reader.pages[2].trimbox] == [9, 9, 585, 729]
    assert [float(v) for v in reader.pages[2].mediabox] == [0, 0, 594, 738]
    assert reader.metadata["/Pictures"].startswith("300 dpi at printed size: Lanczos resize")
    html = Path(api.predict(book["id"], "html", False, "8x10", True, api_name="/export_book"))
    text = html.read_text(encoding="utf-8")
    assert '<html lang="en">' in text and "For Mia, on her fourth birthday" in text

    bob = client(served, downloads, BOB)
    for name, args in {"/edit_page_text": (book["id"], 1, "Mine now."),
                       "/insert_page": (book["id"], 0, "Mine."), "/delete_page": (book["id"], 1),
                       "/move_page": (book["id"], 1, 2),
                       "/edit_book": (book["id"], "For Bob", "", "")}.items():
        with pytest.raises(AppError, match=f"no book with id '{book['id']}'"):
            bob.predict(*args, api_name=name)
    with pytest.raises(AppError, match="page 9 does not exist: this book has pages 1 to 3"):
        api.predict(book["id"], 9, 1, api_name="/move_page")


def test_work_that_ended_unwatched_is_there_to_find(alice_book, served, downloads):
    api = client(served, downloads, ALICE)
    work = {job["kind"]: job for job in api.predict(api_name="/current_work")}
    training, drawing = work["training"], work["illustration"]
    assert (training["state"], training["title"], training["subject"]) == (
        "done", "Training Mia", "Mia")
    assert training["message"] == "Mia is trained (4 steps)" and training["result"]["done"]
    assert drawing["title"] == "Illustrating “Mia at the Sea”" and drawing["state"] == "done"
    assert drawing["message"] == "3 of 3 pages have a picture"
    assert drawing["result"] == {"id": alice_book["book"]["id"], "title": "Mia at the Sea"}
    with pytest.raises(AppError, match="Training Mia is not running any more"):
        api.predict(training["id"], api_name="/cancel_work")
    assert client(served, downloads, BOB).predict(api_name="/current_work") == []
    with pytest.raises(AppError, match="no work with id"):
        client(served, downloads, BOB).predict(training["id"], api_name="/cancel_work")


def test_try_a_character_at_a_chosen_strength(alice_book):
    picture, tried = alice_book["api"].predict("mia", "on a swing", 0.8, 5, "pastel",
                                               api_name="/try_character")
    assert tried["scene"] == "Mia on a swing" and tried["seed"] == 5
    assert tried["adapter_weight"] == 0.8 and tried["likeness"] is None
    assert (tried["width"], tried["height"], tried["steps"]) == (512, 512, 12)  # the CPU's
    assert f"{tried['prompt']}".count("girl") == 1 and "on a swing" in tried["prompt"]
    assert Path(picture).is_file()
    with pytest.raises(AppError, match="greater than maximum value 2"):
        alice_book["api"].predict("Mia", "", 3.0, 1, "pastel", api_name="/try_character")


def test_a_character_grows_and_changes_through_the_api(alice_book, face_photos):
    api = alice_book["api"]
    grown = api.predict("Mia", [handle_file(face_photos[3])], False, api_name="/add_photos")
    assert len(grown["character"]["crops"]) == 4
    assert grown["out_of_date"] == "its photos changed since it was trained (3 then, 4 now)"
    changed = api.predict("Mia", "", "curly red hair, green boots",
                          api_name="/change_character")
    assert changed["character"]["kind"] == "girl"
    assert changed["character"]["description"] == "curly red hair, green boots"
    [mia] = [c for c in api.predict(api_name="/list_characters") if c["name"] == "Mia"]
    assert mia["photos"] == 4 and mia["out_of_date"] == grown["out_of_date"]


def test_the_work_panel_shows_work_that_ended_unwatched_once(tmp_path):
    from pipeline.work import recorded
    from ui import work as panel
    from ui.auth import Caller

    caller = Caller(Settings(data_dir=tmp_path / "data"), "alice", None)
    with recorded(caller.settings, "alice", "training", "Mia", "Training Mia") as job:
        job.finish("Mia is trained (4 steps)")
    box, text, row, chooser, shown, last = panel.follow(caller, [], "")
    assert box["visible"] and not row["visible"] and text == last
    assert text.startswith("- ✅ Training Mia: Mia is trained \\(4 steps\\): the **Train** tab")
    assert panel.follow(caller, shown, last)[-2:] == (shown, last)  # seen now, still shown here
    import gradio as gr

    later = panel.follow(caller, [], "")  # a page opened later: the hidden panel stays so
    assert later[:4] == (gr.skip(),) * 4 and later[4:] == ([], "")
