"""Starting up (actions.system): the configured base model, or demo mode on the tiny model where
it can't be loaded, with the banner and the log line that say so; whether drafting works."""
import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline import draft, models
from pipeline.actions import system
from pipeline.settings import Settings
from pipeline.testing import is_test_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def torch_threads():
    """start() runs the tiny model on one thread; the other tests keep their own."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def nowhere(tmp_path):
    """Settings whose base model is a folder that does not exist (and no GPU)."""
    return Settings(base_model=str(tmp_path / "no-such-model"), data_dir=tmp_path / "data",
                    device="cpu")


def test_a_base_model_that_cannot_load_starts_demo_mode_on_the_tiny_model(nowhere):
    started = system.start(nowhere)
    demo = started.settings
    assert started.demo and "TALEWEAVER_BASE_MODEL" in started.demo_reason
    assert Path(demo.base_model) == nowhere.data_dir / models.DEMO_MODEL_DIR
    assert (demo.vae, demo.resolution) == ("", system.DEMO_RESOLUTION)
    assert is_test_model(demo.base_model) and models.is_loaded(demo)
    assert Path(demo.safety_model) == Path(demo.base_model) / models.DEMO_SAFETY_DIR
    assert started.no_safety == ""  # the tiny classifier kept beside the demo model loads
    import torch

    assert torch.get_num_threads() == 1  # the tiny model's kernels are too small to share
    built = (Path(demo.base_model) / "model_index.json").stat().st_mtime_ns
    models.clear_cache()
    again = system.start(nowhere)  # the demo model is built once, then reused
    assert (Path(demo.base_model) / "model_index.json").stat().st_mtime_ns == built
    assert again.settings == demo
    here = system.machine(demo)
    assert here.test_model and here.model == models.DEMO_MODEL_DIR and not here.has_gpu


def test_the_configured_model_is_used_when_it_loads(settings):
    started = system.start(settings)
    assert not started.demo and started.settings == settings and started.no_safety == ""
    assert models.is_loaded(settings)
    assert not is_test_model("stabilityai/stable-diffusion-xl-base-1.0")


def test_without_the_safety_classifier_the_app_starts_and_says_no_picture_is_drawn(settings,
                                                                                 tmp_path):
    import app

    unchecked = dataclasses.replace(settings, safety_model=str(tmp_path / "no-classifier"))
    started = system.start(unchecked)
    assert not started.demo and "TALEWEAVER_SAFETY_MODEL" in started.no_safety  # for the log
    text = app.banner(started.settings, started)
    assert "**No pictures on this server right now.**" in text
    assert "no-classifier" not in text and "SAFETY_MODEL" not in text  # nothing of the server's


def test_the_banner_says_why_and_what_to_do(nowhere, settings):
    import app

    started = system.Startup(dataclasses.replace(nowhere, base_model="demo-model"),
                             demo_reason=f"TALEWEAVER_BASE_MODEL={nowhere.base_model}: no such "
                                         "folder")
    text = app.banner(started.settings, started)
    assert text.startswith("**Demo mode.**") and "draws coloured noise" in text
    assert "ZeroGPU" in text and "Hugging Face Jobs" in text and "NVIDIA GPU" in text
    assert str(nowhere.data_dir) not in text and "no-such-model" not in text  # no server path
    assert app.banner(settings).startswith("**Test model.**")  # the tiny model on purpose
    sdxl = dataclasses.replace(settings, base_model="stabilityai/stable-diffusion-xl-base-1.0")
    cpu_note = app.banner(sdxl)
    assert cpu_note.startswith("**No GPU on this machine.**")
    assert "each picture takes minutes" in cpu_note and "hours" in cpu_note


def test_drafting_is_unavailable_where_the_story_model_is_not_here(tmp_path, monkeypatch):
    offline = Settings(data_dir=tmp_path, story_model="someone/not-downloaded-model")
    assert "is not in the Hugging Face cache" in system.drafting_problem(offline)
    folder = tmp_path / "story"
    assert "no model folder" in system.drafting_problem(
        dataclasses.replace(offline, story_model=str(folder)))
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert system.drafting_problem(dataclasses.replace(offline, story_model=str(folder))) == ""
    monkeypatch.setattr(draft.constants, "is_offline_mode", lambda: False)
    assert system.drafting_problem(offline) == ""  # online: it can be downloaded
    monkeypatch.setitem(draft._failed, offline.story_model, "it failed to load")
    assert system.drafting_problem(offline) == "it failed to load"  # remembered


@pytest.mark.slow
def test_python_app_py_starts_in_demo_mode_where_the_model_cannot_load(tmp_path):
    """README's first command on a machine without the model: no traceback, a page, a log line."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALEWEAVER_")}
    env.update(TALEWEAVER_BASE_MODEL=str(tmp_path / "no-such-model"),
               TALEWEAVER_DATA_DIR=str(tmp_path / "data"), TALEWEAVER_DEVICE="cpu",
               GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read()
            time.sleep(1)
        else:
            raise AssertionError("the app did not answer")
    finally:
        server.terminate()
        log = server.communicate(timeout=60)[0]
    assert "Traceback" not in log
    assert re.search(r"WARNING taleweaver: DEMO MODE: the base model could not be loaded "
                     r"\(TALEWEAVER_BASE_MODEL=.*no-such-model: no such folder\)", log)
    assert (tmp_path / "data" / models.DEMO_MODEL_DIR / "model_index.json").is_file()
