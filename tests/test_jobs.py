"""Training on Hugging Face Jobs (pipeline/jobs/, the actions and the CLI), against the fake
Jobs service of fake_jobs.py: a job is our own command run as a local subprocess on a fake Hub
kept in a folder, so the code that trains "on Jobs" here is the code a real job runs.

The tiny model trains "Mia" for 12 steps at 64 px; the jobs that really run are marked slow.
"""
import dataclasses
import json
import os

import pytest
import torch
from fake_hub import ALICE, NoHub, http_error
from fake_jobs import FakeJobs
from huggingface_hub import constants
from safetensors.torch import load_file

from pipeline import cli
from pipeline.actions import training
from pipeline.adapter_files import ADAPTER_WEIGHTS, KOHYA_WEIGHTS, MODEL_CARD, TRAIN_CONFIG
from pipeline.characters import CharacterStore
from pipeline.hub import calls as hub_calls
from pipeline.hub import tokens as hub_tokens
from pipeline.jobs import flavors, lines
from pipeline.jobs.launch import job_command
from pipeline.progress import Progress
from pipeline.settings import Settings
from pipeline.training.config import preset_config
from pipeline.training.trainer import train_character

pytestmark = pytest.mark.usefixtures("one_thread")
USER = "local"
BUCKET = "alice/taleweaver-mia-training"
REPO = "alice/taleweaver-mia"
OPTIONS = {"steps": 12, "rank": 4, "prior_preservation": False, "warmup_steps": 0,
           "validation_steps": 2}
CLI_OPTIONS = ["--steps", "12", "--rank", "4", "--no-prior-preservation",
               "--set", "warmup_steps=0", "--set", "validation_steps=2"]
IMAGE = "hf.co/spaces/alice/taleweaver"


@pytest.fixture
def make_jobs(tmp_path, monkeypatch):
    """FakeJobs(execute=...) as the Hub client of this process, online."""
    made = []

    def make(execute=True):
        service = FakeJobs(tmp_path / f"service{len(made)}", execute=execute, threads=1)
        made.append(service)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hub_calls, "hf_api", lambda: service)
        monkeypatch.setattr(hub_tokens, "_token_users", {})
        return service

    yield make
    for service in made:
        service.close()


@pytest.fixture
def jobs(make_jobs):
    """Jobs that really run (slow)."""
    return make_jobs(execute=True)


@pytest.fixture
def idle(make_jobs):
    """Jobs that wait for a GPU until the test ends them."""
    return make_jobs(execute=False)


@pytest.fixture
def on_space(settings):
    """The settings of an app whose jobs run the image of its Space."""
    return dataclasses.replace(settings, job_image=IMAGE)


@pytest.fixture
def cli_env(on_space, monkeypatch):
    for key, value in {"TALEWEAVER_BASE_MODEL": on_space.base_model, "TALEWEAVER_VAE": "",
                       "TALEWEAVER_DEVICE": "cpu", "TALEWEAVER_RESOLUTION": "64",
                       "TALEWEAVER_DATA_DIR": str(on_space.data_dir),
                       "TALEWEAVER_JOB_IMAGE": IMAGE, "HF_TOKEN": ALICE}.items():
        monkeypatch.setenv(key, value)


def start(settings, **kwargs):
    return training.train_on_jobs(settings, USER, "Mia", "", OPTIONS, token=ALICE,
                                  flavor=kwargs.pop("flavor", "l4x1"), follow=False, **kwargs)


def bucket_files(service):
    bucket = service.state().buckets.get(BUCKET)
    return None if bucket is None else sorted(bucket["files"])


def adapter_dir(settings, character):
    return CharacterStore(settings, USER).adapter_dir(character)


# --- The lines a job prints -----------------------------------------------------------------

def test_progress_result_and_error_lines_read_back_and_other_lines_are_ignored():
    progress = Progress(120, 400, "step", loss=0.08, seconds_left=90.0)
    assert lines.parse(lines.progress_line(progress)) == ("progress", progress)
    assert lines.parse("  " + lines.result_line({"step": 4}) + "\n") == ("result", {"step": 4})
    assert lines.parse(lines.error_line("out of memory")) == ("error", "out of memory")
    for other in ("Downloading model.safetensors: 100%", "", "@taleweaver progress {broken",
                  "@taleweaver progress {\"done\": 1}", "@taleweaver nonsense {}",
                  "@taleweaver result [1, 2]"):
        assert lines.parse(other) is None


# --- Hardware and cost ------------------------------------------------------------------------

def test_the_cost_is_shown_for_a_flavor_from_its_price(on_space, character, idle):
    plan = training.plan_training(on_space, USER, "Mia", "", OPTIONS, where="hf-jobs",
                                  flavor="a100-large", token=ALICE)
    job = plan.job
    assert (job.flavor.name, job.flavor.gpu, job.flavor.gpus) == ("a100-large", "A100", 1)
    assert job.minutes == -(-(job.estimate.seconds + flavors.START_SECONDS) // 60)
    assert job.cost_usd == pytest.approx(job.minutes * 0.041667)
    assert job.timeout_seconds == flavors.MIN_TIMEOUT_SECONDS
    assert job.max_cost_usd == pytest.approx(30 * 0.041667)
    text = plan.to_json()["text"]
    assert f"about {job.minutes} min on Nvidia A100 - large (a100-large)" in text
    assert f"about ${job.cost_usd:.2f} at $2.50 an hour" in text and "$1.25 at most" in text
    assert "rough figure for A100 (a100-large on Hugging Face Jobs)" in job.estimate.describe()
    assert BUCKET in plan.photos and "deleted when it ends" in plan.photos
    names = [f.name for f in training.jobs_hardware(ALICE)]
    assert names == ["t4-small", "l4x1", "a100-large", "a10g-largex2", "l4x4"]  # cheapest first


def test_a_full_size_person_costs_minutes_and_cents_on_an_l4(tmp_path, idle):
    """The figures a parent sees for a real run: 8 photos at 1024 px, the person preset."""
    settings = Settings(data_dir=tmp_path / "real")
    flavor = flavors.find_flavor(training.jobs_hardware(ALICE), "l4x1")
    plan = flavors.plan_job(settings, preset_config("person", 8), flavor)
    assert plan.estimate.steps_left == 640 and plan.estimate.class_images_to_make == 24
    assert 10 < plan.minutes < 40 and plan.cost_usd < 0.6
    assert plan.timeout_seconds == 2 * 60 * plan.minutes
    assert plan.checkpoint_steps == round(flavors.CHECKPOINT_SECONDS
                                          / plan.estimate.seconds_per_step)


def test_a_flavor_with_several_gpus_runs_under_accelerate_on_all_of_them(on_space, character,
                                                                        idle):
    plan = training.plan_training(on_space, USER, "Mia", "", OPTIONS, where="hf-jobs",
                                  flavor="l4x4", token=ALICE)
    assert job_command(BUCKET, plan.job)[:6] == ["accelerate", "launch", "--multi_gpu",
                                                 "--num_processes", "4", "--num_machines"]
    assert "one GPU is plenty" in plan.job.describe()
    record = start(on_space, flavor="l4x4")
    command = idle.jobs[record.job_id].spec["command"]
    assert command[command.index("-m"):][:4] == ["-m", "pipeline", "job-train", BUCKET]
    with pytest.raises(flavors.UnknownFlavor, match="no GPU hardware called 'h900'.*l4x1"):
        training.plan_training(on_space, USER, "Mia", "", OPTIONS, where="hf-jobs",
                               flavor="h900", token=ALICE)


# --- Starting, and why a job can't start -----------------------------------------------------

def test_a_job_starts_in_the_users_account_with_the_token_only_as_a_secret(on_space, character,
                                                                          idle):
    record = start(on_space, checkpoint_steps=4)
    job = idle.jobs[record.job_id]
    assert job.spec["command"] == ["python", "-m", "pipeline", "job-train", BUCKET,
                                   "--checkpoint-steps", "4"]
    assert job.spec["secrets"] == {"HF_TOKEN": ALICE} and job.owner == "alice"
    assert job.spec["image"] == IMAGE and job.spec["flavor"] == "l4x1"
    assert job.spec["env"] == {"TALEWEAVER_BASE_MODEL": on_space.base_model,
                               "TALEWEAVER_VAE": "", "TALEWEAVER_RESOLUTION": "64",
                               "TALEWEAVER_SAFETY_MODEL": on_space.safety_model}
    assert job.spec["timeout"] == flavors.MIN_TIMEOUT_SECONDS
    assert ALICE not in json.dumps([job.spec[k] for k in ("command", "labels", "env", "image",
                                                          "name")])
    hub = idle.state()
    assert hub.buckets[BUCKET]["private"] and bucket_files(idle) == [
        "photos/character.json", "photos/crops/01.png", "photos/crops/02.png",
        "photos/crops/03.png", "photos/crops/04.png", "photos/train.json"]
    assert json.loads(hub.buckets[BUCKET]["files"]["photos/train.json"])["steps"] == 12
    assert (record.state, record.active, record.bucket) == ("scheduling", True, BUCKET)
    assert "waiting for a GPU" in training.job_status(on_space, USER, "Mia", ALICE).message
    again = start(on_space)  # a second press follows the same job
    assert again.job_id == record.job_id and len(idle.jobs) == 1
    with pytest.raises(ValueError, match="Mia is training on Hugging Face Jobs"):
        training.train(on_space, USER, "Mia", "", OPTIONS, token=None)


@pytest.mark.parametrize("status, reason, words", [
    (403, "forbidden", "needs the permission to run Jobs in your account"),
    (402, "billing", "402 Payment Required"),
    (401, "unauthorized", "did not accept the token"),
])
def test_a_job_that_cannot_start_says_why_and_takes_the_photos_back(on_space, character, idle,
                                                                   status, reason, words):
    idle.fail("run_job", http_error(status))
    with pytest.raises(training.JobsUnavailable, match=words) as err:
        start(on_space)
    assert err.value.reason == reason
    assert "isn't possible now: the job could not start" in str(err.value)
    assert bucket_files(idle) == [] and idle.jobs == {}
    assert training.job_status(on_space, USER, "Mia", ALICE) is None
    trained = training.train(on_space, USER, "Mia", "", OPTIONS, token=None)  # here still works
    assert trained.result.done


def test_without_a_token_nothing_is_sent_and_here_is_offered(on_space, character, cli_env,
                                                             monkeypatch, capsys):
    monkeypatch.setattr(hub_calls, "hf_api", NoHub)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(training.JobsUnavailable, match="sign-in") as err:
        training.train_on_jobs(on_space, USER, "Mia", "", OPTIONS, token=None)
    assert err.value.reason == "no_token"
    monkeypatch.delenv("HF_TOKEN")
    assert cli.main(["train", "Mia", "--on", "hf-jobs", *CLI_OPTIONS]) == 1
    message = capsys.readouterr().err
    assert "Traceback" not in message and "HF_TOKEN" in message
    assert message.strip().endswith("To train on this machine instead, run: python -m "
                                    "pipeline train Mia")


def test_the_cli_says_what_is_missing_and_offers_here(character, cli_env, idle, capsys):
    idle.fail("run_job", http_error(403))
    assert cli.main(["train", "Mia", "--on", "hf-jobs", "--flavor", "l4x1", *CLI_OPTIONS]) == 1
    message = capsys.readouterr().err
    assert "Traceback" not in message and "permission to run Jobs" in message
    assert "To train on this machine instead, run: python -m pipeline train Mia" in message
    assert cli.main(["job-flavors"]) == 0
    assert "Nvidia L4 (l4x1): 1 GPU, 24 GB, $0.80 an hour" in capsys.readouterr().out
    assert cli.main(["train", "Mia", "--on", "hf-jobs", "--estimate", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["job"]["flavor"]["name"] == "l4x1" and estimate["job"]["cost_usd"] > 0


def test_a_public_bucket_of_that_name_gets_no_photos(on_space, character, idle):
    idle.create_bucket(BUCKET, private=False, token=ALICE)
    with pytest.raises(training.JobsUnavailable, match="is public") as err:
        start(on_space)
    assert err.value.reason == "public_bucket" and bucket_files(idle) == []


def test_outside_a_space_a_job_needs_an_image(settings, character, idle):
    with pytest.raises(training.JobsUnavailable, match="TALEWEAVER_JOB_IMAGE") as err:
        start(settings)
    assert err.value.reason == "no_image" and BUCKET not in idle.state().buckets


# --- Cancelled, vanished, timed out -----------------------------------------------------------

def test_cancel_leaves_the_character_as_it_was_and_the_photos_go(on_space, character, cli_env,
                                                                idle, capsys):
    record = start(on_space)
    assert cli.main(["job-cancel", "Mia"]) == 0
    assert "The training job for Mia was cancelled" in capsys.readouterr().out
    cancelled = training.job_status(on_space, USER, "Mia", ALICE)
    assert cancelled.state == "cancelled" and not cancelled.active
    assert idle.jobs[record.job_id].current()[0] == "CANCELED"
    assert "was cancelled. Mia is as it was before" in cancelled.message
    assert "photos' training copy is deleted" in cancelled.message
    assert bucket_files(idle) == []
    assert not CharacterStore(on_space, USER).has_adapter(character)
    with pytest.raises(ValueError, match="no training job running"):
        training.cancel_job(on_space, USER, "Mia", ALICE)


def test_a_vanished_job_is_said_so_and_cleaned_up(on_space, character, idle):
    record = start(on_space)
    idle.vanish(record.job_id)
    seen = training.job_status(on_space, USER, "Mia", ALICE)
    assert seen.state == "vanished" and "can no longer be found" in seen.message
    assert bucket_files(idle) == [] and seen.settled and seen.cleaned
    assert training.job_status(on_space, USER, "Mia", ALICE) == seen  # settled once


def test_a_job_past_its_time_limit_says_so(on_space, character, idle):
    record = start(on_space)
    idle.expire(record.job_id)
    seen = training.job_status(on_space, USER, "Mia", ALICE)
    assert seen.state == "timed_out" and "ran past its time limit (30 min)" in seen.message
    assert "training again starts from the beginning" in seen.message


def test_an_ended_job_whose_bucket_could_not_be_cleaned_is_cleaned_at_the_next_look(
        on_space, character, idle):
    record = start(on_space)
    idle.finish(record.job_id, "ERROR", "out of memory")
    idle.fail("list_bucket_tree", http_error(403))
    seen = training.job_status(on_space, USER, "Mia", ALICE)
    assert seen.state == "failed" and "failed: out of memory" in seen.message
    assert not seen.cleaned and "deleted at the next look" in seen.message
    assert bucket_files(idle) != []
    again = training.job_status(on_space, USER, "Mia", ALICE)
    assert again.cleaned and "the photos' training copy is deleted." in again.message
    assert bucket_files(idle) == []


def test_a_job_that_cannot_train_says_why_in_plain_words_and_deletes_the_photos(
        on_space, character, idle, monkeypatch, tmp_path):
    """job-train in this process, as a job runs it: the error line reaches the parent."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "job-tmp"))
    (tmp_path / "job-tmp").mkdir()
    record = training.train_on_jobs(on_space, USER, "Mia", "", {**OPTIONS, "quantize": "8bit"},
                                    token=ALICE, flavor="l4x1", follow=False)
    printed = []
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        training.job_train(on_space, BUCKET, ALICE, checkpoint_steps=4, emit=printed.append)
    kind, why = lines.parse(printed[-1])
    assert kind == "error" and why.startswith("quantize='8bit' needs a CUDA GPU")
    assert lines.parse(printed[0])[1].message == "loading the base model"
    assert bucket_files(idle) == []  # the job itself took the photos back
    assert not (tmp_path / "job-tmp" / "taleweaver-job").exists()
    idle.jobs[record.job_id].log.write_text("\n".join(printed) + "\n")
    idle.finish(record.job_id, "ERROR", "exit code 1")
    seen = training.job_status(on_space, USER, "Mia", ALICE)
    assert seen.state == "failed" and f"failed: {why.rstrip('.')}. Mia is as it was" in seen.message


# --- Through the app's API ----------------------------------------------------------------

@pytest.fixture
def app_on_space(on_space):
    """The app with sign-in (API callers pass their token), its jobs on the Space's image;
    Alice's "Mia" made."""
    from conftest import make_crops

    settings = dataclasses.replace(on_space, require_login="always")
    CharacterStore(settings, "alice").create("Mia", "girl", "curly red hair", "ohwx",
                                             make_crops(4, 64, seed=0))
    return settings


def api_client(url, tmp_path):
    from gradio_client import Client

    return Client(url, oauth_token=ALICE, verbose=False, download_files=tmp_path,
                  analytics_enabled=False)


def test_the_api_shows_hardware_cost_state_and_cancels(app_on_space, idle, tmp_path):
    from gradio_client.exceptions import AppError
    from served import served_app

    with served_app(app_on_space) as url:
        api = api_client(url, tmp_path)
        hardware = api.predict(api_name="/jobs_hardware")
        assert hardware[1]["name"] == "l4x1"
        assert hardware[1]["usd_per_hour"] == pytest.approx(0.8, abs=1e-3)
        plan = api.predict("Mia", "", 12, json.dumps(OPTIONS), "hf-jobs", "l4x1",
                           api_name="/estimate_training")
        assert plan["job"]["flavor"]["name"] == "l4x1" and "$0.80 an hour" in plan["text"]
        assert BUCKET in plan["photos"]
        assert api.predict("Mia", api_name="/job_status")["state"] == "none"
        idle.fail("run_job", http_error(403))
        with pytest.raises(AppError, match='permission to run Jobs.*Choose "Here"'):
            api.predict("Mia", "person", 12, json.dumps(OPTIONS), "l4x1",
                        api_name="/train_on_jobs")
        started = training.train_on_jobs(app_on_space, "alice", "Mia", "", OPTIONS, token=ALICE,
                                         flavor="l4x1", follow=False)
        status = api.predict("Mia", api_name="/job_status")
        assert (status["job_id"], status["state"], status["active"]) == (
            started.job_id, "scheduling", True)
        cancelled = api.predict("Mia", api_name="/cancel_job")
        assert cancelled["state"] == "cancelled" and not cancelled["active"]
        assert bucket_files(idle) == []


# --- Jobs that run (slow) --------------------------------------------------------------------

@pytest.mark.slow
def test_a_character_trains_on_jobs_end_to_end_through_the_cli(on_space, character, cli_env,
                                                               jobs, capsys):
    assert cli.main(["train", "Mia", "--on", "hf-jobs", "--flavor", "l4x1", *CLI_OPTIONS]) == 0
    out, err = capsys.readouterr()
    (job,) = jobs.jobs.values()
    assert job.spec["command"][:5] == ["python", "-m", "pipeline", "job-train", BUCKET]
    log = jobs.log(job.id)
    assert "@taleweaver result" in log and "@taleweaver error" not in log
    # The token travelled only as a secret: never in the command, labels, environment or logs.
    assert job.spec["secrets"] == {"HF_TOKEN": ALICE}
    assert ALICE not in json.dumps([job.spec[k] for k in ("command", "labels", "env", "image")])
    assert ALICE not in log + out + err
    # The adapter is in the private repo (with its model card) and in the local store.
    hub = jobs.state()
    repo = hub.repos[REPO]
    assert repo["private"] and {ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG,
                                MODEL_CARD} <= set(repo["files"])
    assert b"ohwx girl" in repo["files"][MODEL_CARD]
    local = adapter_dir(on_space, character)
    assert (local / ADAPTER_WEIGHTS).read_bytes() == repo["files"][ADAPTER_WEIGHTS]
    assert {c[2] for c in hub.calls} == {ALICE}  # every Hub call with the user's own token
    # The photos' training copy is gone, and so is the bucket.
    assert BUCKET not in hub.buckets
    # Progress reached the caller, and the character counts as trained, as after local training.
    assert "12/12" in err and "Mia is trained" in out and REPO in out
    assert training.plan_training(on_space, USER, "Mia", "", OPTIONS).estimate.steps_left == 0
    assert cli.main(["job-status", "Mia", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["done"], status["step"], status["total"]) == (
        "succeeded", True, 12, 12)
    assert status["hub"]["repo_id"] == REPO


@pytest.mark.slow
def test_a_job_that_fails_midway_is_continued_by_the_next_from_its_checkpoint(
        on_space, character, jobs, tmp_path):
    crashed = []

    def crash_after_a_checkpoint(progress):
        files = bucket_files(jobs) or []
        if not crashed and "checkpoint/progress.json" in files and progress.done > 4:
            (job_id,) = jobs.jobs
            jobs.crash(job_id)
            crashed.append(progress.done)

    failed = training.train_on_jobs(on_space, USER, "Mia", "", OPTIONS, token=ALICE,
                                    flavor="l4x1", checkpoint_steps=4,
                                    on_progress=crash_after_a_checkpoint)
    assert crashed and failed.state == "failed" and not failed.active
    assert "failed: exit code 137. Mia is as it was before" in failed.message
    step = failed.checkpoint_step
    assert step in (4, 8) and f"(step {step} of 12) stays in your private bucket" in failed.message
    assert not CharacterStore(on_space, USER).has_adapter(character)
    assert bucket_files(jobs) == ["checkpoint/progress.json", "checkpoint/state.pt"]
    plan = training.plan_training(on_space, USER, "Mia", "", OPTIONS, where="hf-jobs",
                                  flavor="l4x1", token=ALICE)
    assert plan.job.estimate.steps_left == 12 - step

    seen = []
    done = training.train_on_jobs(on_space, USER, "Mia", "", OPTIONS, token=ALICE,
                                  flavor="l4x1", checkpoint_steps=4, on_progress=seen.append)
    assert done.state == "succeeded" and done.done and len(jobs.jobs) == 2
    assert any(p.message.startswith(f"continuing from step {step}") for p in seen)
    assert min(p.done for p in seen if p.unit == "step" and not p.message) > step
    assert BUCKET not in jobs.state().buckets
    # Bitwise the adapter of one uninterrupted run on this machine.
    whole = dataclasses.replace(on_space, data_dir=tmp_path / "whole")
    from conftest import make_crops

    CharacterStore(whole, USER).create("Mia", "girl", "curly red hair", "ohwx",
                                       make_crops(4, 64, seed=0))
    train_character(whole, USER, "Mia", preset_config("person", 4, **OPTIONS))
    resumed = load_file(adapter_dir(on_space, character) / ADAPTER_WEIGHTS)
    reference = load_file(adapter_dir(whole, character) / ADAPTER_WEIGHTS)
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in resumed)


def test_the_train_tab_offers_here_when_jobs_cannot_be_used(on_space, character, idle):
    from ui.auth import Caller
    from ui.train import show_job, show_place

    where, flavor, here_button, jobs_button, note = show_place(
        Caller(on_space, USER, None), "hf-jobs", None)
    assert where["value"] == "here" and not flavor["visible"] and here_button["visible"]
    note = note.replace("\\", "")  # Markdown escapes
    assert not jobs_button["visible"] and "need your Hugging Face sign-in" in note
    assert 'Choose "Here" to train on this machine instead.' in note
    where, flavor, _, jobs_button, note = show_place(Caller(on_space, USER, ALICE), "hf-jobs",
                                                     None)
    assert (where["value"], flavor["value"], jobs_button["visible"], note) == (
        "hf-jobs", "l4x1", True, "")
    assert ("l4x1", "l4x1") not in flavor["choices"]  # each shows its price
    start(on_space)
    text, cancel = show_job(Caller(on_space, USER, ALICE), "Mia")
    assert "waiting for a GPU" in text and cancel["visible"]


@pytest.mark.slow
def test_the_api_follows_a_job_with_the_progress_bar(app_on_space, jobs, tmp_path):
    import time

    from served import served_app

    with served_app(app_on_space) as url:
        api = api_client(url, tmp_path)
        job = api.submit("Mia", "person", 12, json.dumps(OPTIONS), "l4x1",
                         api_name="/train_on_jobs")
        shown = []
        while not job.done():
            status = job.status()
            shown += [unit.desc for unit in status.progress_data or [] if unit.desc]
            time.sleep(0.05)
        result = job.result()
    assert result["done"] and result["state"] == "succeeded" and result["hub"]["repo_id"] == REPO
    assert any(line.startswith("step 12/12") for line in shown)
    assert any("waiting for a GPU" in line for line in shown)
    assert CharacterStore(app_on_space, "alice").has_adapter(
        CharacterStore(app_on_space, "alice").get("Mia"))


@pytest.mark.slow
def test_a_two_gpu_flavor_trains_under_accelerate_launch(on_space, character, jobs):
    """Two processes (gloo on the CPU) run job-train: one takes the files, both train."""
    if os.cpu_count() < 2:
        pytest.skip("two processes need two cores")
    done = training.train_on_jobs(on_space, USER, "Mia", "", OPTIONS, token=ALICE,
                                  flavor="a10g-largex2")
    (job,) = jobs.jobs.values()
    assert job.spec["command"][:5] == ["accelerate", "launch", "--multi_gpu",
                                       "--num_processes", "2"]
    assert done.state == "succeeded", jobs.log(job.id)[-3000:]
    assert jobs.log(job.id).count("@taleweaver result") == 1
    assert CharacterStore(on_space, USER).has_adapter(character)
