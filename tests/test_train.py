import dataclasses
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same_pipeline, make_crops, pipeline_snapshot
from PIL import Image
from safetensors.torch import load_file

from pipeline import cli, models
from pipeline.adapter_files import (ADAPTER_WEIGHTS, CHECKPOINT_DIR, KOHYA_WEIGHTS, TRAIN_CONFIG,
                                    VALIDATION_IMAGE)
from pipeline.actions.training import check_validation
from pipeline.adapters import AdapterRef, adapters_held
from pipeline.characters import CharacterStore
from pipeline.hardware import detect
from pipeline.render import RenderJob, render
from pipeline.settings import Settings
from pipeline.training import finish
from pipeline.training import trainer as train
from pipeline.training.checkpoint import PROGRESS_FILE, STATE_FILE
from pipeline.training.config import TrainingRecord, preset_config
from pipeline.training.estimate import record_step_time
from pipeline.training.finish import adapter_out_of_date
from pipeline.training.trainer import (ChunkResult, TrainingError,
                                       estimate_character, train_character, train_chunk)

pytestmark = pytest.mark.usefixtures("one_thread")

USER = "local"
# Everything on: prior preservation, text-encoder LoRA, offset noise, alpha != rank, warm-up,
# the validation image (off by default on the CPU).
FULL = preset_config("person", 4, steps=24, rank=4, alpha=8, warmup_steps=5, class_images=2,
                     offset_noise=0.05, train_text_encoder=True, validation="on",
                     validation_steps=2)
# What `train Mia --steps N --rank 4 --no-prior-preservation --set ...` gives (see _cli below).
PLAIN = preset_config("person", 4, steps=20, rank=4, prior_preservation=False, warmup_steps=0,
                      validation="on", validation_steps=2)


def make_mia(settings: Settings):
    """The same character as conftest's `character` fixture."""
    return CharacterStore(settings, USER).create("Mia", "girl", "curly red hair", "ohwx",
                                                 make_crops(4, settings.resolution, seed=0))


def adapter_files(settings: Settings) -> tuple[dict, np.ndarray]:
    folder = settings.data_dir / "users" / USER / "characters" / "mia" / "adapter"
    with Image.open(folder / VALIDATION_IMAGE) as image:
        return load_file(str(folder / ADAPTER_WEIGHTS)), np.asarray(image)


def assert_same_adapter(a, b) -> None:
    (weights_a, image_a), (weights_b, image_b) = a, b
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert np.array_equal(image_a, image_b)


def checkpoint_dir(settings: Settings) -> Path:
    return settings.data_dir / "users" / USER / "characters" / "mia" / CHECKPOINT_DIR


@pytest.fixture(scope="module")
def reference(one_thread, tiny_model_dir, tiny_safety_dir, tmp_path_factory):
    """FULL and PLAIN trained in one uninterrupted chunk each: {config: (weights, image)}."""
    out = {}
    for config in (FULL, PLAIN):
        settings = Settings(base_model=str(tiny_model_dir), vae="", device="cpu", resolution=64,
                            data_dir=tmp_path_factory.mktemp("reference") / "data",
                            safety_model=str(tiny_safety_dir))
        make_mia(settings)
        result = train_character(settings, USER, "Mia", config)
        assert result.done and result.chunks == 1 and result.step == config.steps
        out[config] = adapter_files(settings)
    return out


def test_writes_the_adapter_folder(settings, character, reference):
    progress = []
    result = train_character(settings, USER, "Mia", PLAIN, on_progress=progress.append)
    folder = result.adapter_dir
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, VALIDATION_IMAGE])
    record = TrainingRecord.from_dict(json.loads((folder / TRAIN_CONFIG).read_text()))
    assert record == TrainingRecord(base_model=settings.base_model, resolution=64, trigger="ohwx",
                                    instance_prompt="a photo of ohwx girl",
                                    validation_prompt="a close-up portrait of ohwx girl "
                                                      "reading a book in a garden",
                                    config=PLAIN, photos=character.photos_key)
    assert result.validation_image == folder / VALIDATION_IMAGE
    assert (result.done, result.step, result.total, result.chunks) == (True, 20, 20, 1)
    *steps, finishing = progress
    assert [p.done for p in steps] == list(range(1, 21)) and steps[-1].seconds_left == 0
    assert all(p.unit == "step" and p.loss > 0 for p in progress)
    assert finishing.done == 20 and "validation image" in finishing.message
    assert finishing.seconds_left is None  # no picture timed on this CPU yet: not guessed
    assert_same_adapter(adapter_files(settings), reference[PLAIN])
    assert CharacterStore(settings, USER).has_adapter(character)
    checked = check_validation(settings, USER, "Mia")  # her crops are blobs: no face to compare
    assert (checked.drawn, checked.worked, checked.likeness) == (True, None, None)
    assert checked.text == ("Validation image: Mia: not scored (no face was found in their "
                            "photos); look at it to judge the likeness.")


def test_chunked_equals_uninterrupted_bitwise(settings, character, reference):
    for steps in (7, 9, 100):
        result = train_character(settings, USER, "Mia", FULL, chunk_steps=steps, max_chunks=1)
    assert result.done and result.step == FULL.steps
    assert_same_adapter(adapter_files(settings), reference[FULL])
    kinds = settings.data_dir / "users" / USER / "class_images"
    assert [p.name for p in kinds.iterdir()] == ["girl"]


def test_simulated_zerogpu_runs_chunks_sized_by_the_step_time(settings, character, reference,
                                                              monkeypatch):
    monkeypatch.setattr(train, "on_zerogpu", lambda: True)
    record_step_time(settings, detect(settings), FULL, 20.0)  # slow: a few steps per call
    progress = []
    result = train_character(settings, USER, "Mia", FULL, on_progress=progress.append)
    assert [p.unit for p in progress] == ["class image", "class image", "step", "step"]
    assert result.done and result.chunks == 2 and progress[2].done < FULL.steps
    assert_same_adapter(adapter_files(settings), reference[FULL])


def test_chunk_arguments_and_result_pickle(settings, character):
    result = train_chunk(settings, USER, "Mia", PLAIN, 3)
    assert result == ChunkResult(step=3, total=20, loss=result.loss,
                                 seconds_per_step=result.seconds_per_step, done=False)
    for value in (settings, PLAIN, result):
        assert pickle.loads(pickle.dumps(value)) == value
    assert train.chunk_duration(settings, USER, "Mia", PLAIN, 5) > 0


def test_adapter_changes_the_output_and_reloads_exactly(settings, character, tiny_model_dir):
    from diffusers import StableDiffusionXLPipeline

    result = train_character(settings, USER, "Mia", FULL)
    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model_dir))
    pipe.set_progress_bar_config(disable=True)
    base = np.asarray(finish.validation_image(pipe, character, FULL, 64))
    pipe.load_lora_weights(str(result.adapter_dir), weight_name=ADAPTER_WEIGHTS, adapter_name="mia")
    reloaded = np.asarray(finish.validation_image(pipe, character, FULL, 64))
    saved = np.asarray(Image.open(result.validation_image))
    assert np.array_equal(reloaded, saved)
    assert not np.array_equal(base, saved)


def test_the_shared_pipeline_is_left_as_found(settings, character):
    pipe = models.load_pipeline(settings)
    pipe("warm-up", num_inference_steps=1, height=64, width=64)
    before = pipeline_snapshot(pipe)
    train_character(settings, USER, "Mia", FULL)
    assert models.load_pipeline(settings) is pipe
    assert_same_pipeline(before, pipeline_snapshot(pipe))


@pytest.fixture
def page_job(two_trained_characters):
    """A page to draw with another trained character's adapter (Rex, from conftest)."""
    trained = Settings(data_dir=two_trained_characters.data_dir)
    store = CharacterStore(trained, two_trained_characters.user)
    rex = AdapterRef("rex", str(store.adapter_dir(store.get("Rex"))), 1.0)
    return RenderJob(prompt="zwx dog on a beach", negative="", seeds=(5,), width=64, height=64,
                     steps=2, guidance=5.0, adapters=(rex,))


def test_illustration_in_another_thread_waits_for_the_training_chunk(settings, character,
                                                                     reference, page_job):
    alone = np.asarray(render(settings, page_job)[0].image)
    drawn, waiting = [], []

    def start_a_page_meanwhile(progress):
        if progress.done == 3:
            page = threading.Thread(target=lambda: drawn.extend(render(settings, page_job)))
            page.start()
            page.join(timeout=1.0)
            waiting.append(page)  # still alive here: it waits for the chunk's lock

    train_character(settings, USER, "Mia", PLAIN, on_progress=start_a_page_meanwhile)
    assert [page.is_alive() for page in waiting] == [True] and not drawn
    waiting[0].join(timeout=60)
    assert np.array_equal(np.asarray(drawn[0].image), alone)
    assert_same_adapter(adapter_files(settings), reference[PLAIN])


def test_training_refuses_while_a_book_holds_adapters_and_changes_nothing(settings, character,
                                                                         page_job):
    pipe = models.load_pipeline(settings)
    with adapters_held(pipe, page_job.adapters, keep=0):
        with pytest.raises(models.PipelineInUseError, match=r"training needs the base model "
                           r"alone.*adapters in use.*book being illustrated") as refused:
            train_character(settings, USER, "Mia", PLAIN)
        assert "rex" not in str(refused.value)  # maybe another user's character: log only
        assert pipe.get_list_adapters()["unet"] == ["rex"]
        with pytest.raises(models.PipelineInUseError, match="drawing class images"):
            train_character(settings, USER, "Mia", FULL)
    assert not checkpoint_dir(settings).exists()
    assert not (settings.data_dir / "users" / USER / "class_images" / "girl").exists()
    assert train_character(settings, USER, "Mia", PLAIN).done  # once the book is done


def test_finished_run_is_not_repeated_and_more_steps_train_again(settings, character, reference):
    short = dataclasses.replace(PLAIN, steps=12)
    train_character(settings, USER, "Mia", short)
    again = train_character(settings, USER, "Mia", short)
    assert again.done and again.chunks == 0
    assert estimate_character(settings, USER, "Mia", short).steps_left == 0
    # A finished run kept no optimizer state, so more steps are a new run.
    assert estimate_character(settings, USER, "Mia", PLAIN).steps_left == 20
    longer = train_character(settings, USER, "Mia", PLAIN)
    assert longer.chunks == 1 and longer.step == 20
    assert_same_adapter(adapter_files(settings), reference[PLAIN])


def test_validation_off_saves_no_image_and_the_very_same_adapter(settings, character, reference):
    off = dataclasses.replace(PLAIN, validation="off")
    progress = []
    result = train_character(settings, USER, "Mia", off, on_progress=progress.append)
    assert result.done and not result.validation_image.exists()
    assert sorted(p.name for p in result.adapter_dir.iterdir()) == sorted(
        [ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG])
    assert (progress[-1].message, progress[-1].seconds_left) == ("saving the adapter", 0)
    assert not check_validation(settings, USER, "Mia").drawn
    weights = load_file(str(result.adapter_dir / ADAPTER_WEIGHTS))
    reference_weights, _ = reference[PLAIN]
    assert weights.keys() == reference_weights.keys()
    assert all(torch.equal(weights[k], reference_weights[k]) for k in weights)
    # "auto" is off on the CPU; the adapter counts as trained whatever its picture settings.
    auto = dataclasses.replace(PLAIN, validation="auto", validation_steps=5)
    assert train_character(settings, USER, "Mia", auto).chunks == 0
    assert estimate_character(settings, USER, "Mia", auto).steps_left == 0


def test_the_validation_image_comes_after_the_adapter_is_saved(settings, character, monkeypatch):
    from pipeline.training import finish

    seen = []
    drawing = finish.validation_image

    def look_then_draw(pipe, mia, config, resolution, seed=None):
        folder = CharacterStore(settings, USER).adapter_dir(mia)
        seen.append(sorted(p.name for p in folder.iterdir()))
        seen.append(checkpoint_dir(settings).exists())
        return drawing(pipe, mia, config, resolution, seed)

    monkeypatch.setattr(finish, "validation_image", look_then_draw)
    train_character(settings, USER, "Mia", PLAIN, chunk_steps=12, max_chunks=1)
    assert checkpoint_dir(settings).is_dir() and not seen
    train_character(settings, USER, "Mia", PLAIN)
    assert seen == [sorted([ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG]), False]


def test_a_finished_run_keeps_no_optimizer_state(settings, character, monkeypatch):
    saved = []
    save = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint",
                        lambda folder, state, total: (saved.append(state.step),
                                                      save(folder, state, total)))
    train_character(settings, USER, "Mia", PLAIN)  # in one go: never a checkpoint
    assert saved == [] and not checkpoint_dir(settings).exists()
    longer = dataclasses.replace(PLAIN, steps=24)
    for _ in range(3):  # in chunks: one after each but the last, which removes it
        train_character(settings, USER, "Mia", longer, chunk_steps=10, max_chunks=1)
    assert saved == [10, 20] and not checkpoint_dir(settings).exists()
    folder = CharacterStore(settings, USER).adapter_dir(character)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ADAPTER_WEIGHTS, KOHYA_WEIGHTS, TRAIN_CONFIG, VALIDATION_IMAGE])


def test_another_base_model_or_resolution_is_not_trained_yet(settings, character, tmp_path):
    train_character(settings, USER, "Mia", PLAIN)
    assert estimate_character(settings, USER, "Mia", PLAIN).steps_left == 0
    other_model = tmp_path / "another-sdxl"
    other_model.symlink_to(settings.base_model)  # the same weights under another name
    switched = dataclasses.replace(settings, base_model=str(other_model))
    larger = dataclasses.replace(settings, resolution=128)
    assert estimate_character(larger, USER, "Mia", PLAIN).steps_left == PLAIN.steps
    assert estimate_character(switched, USER, "Mia", PLAIN).steps_left == PLAIN.steps
    again = train_character(switched, USER, "Mia", PLAIN)
    assert again.done and again.chunks == 1 and again.step == PLAIN.steps
    record = json.loads((again.adapter_dir / TRAIN_CONFIG).read_text())
    assert record["base_model"] == str(other_model)
    assert train_character(switched, USER, "Mia", PLAIN).chunks == 0
    assert estimate_character(settings, USER, "Mia", PLAIN).steps_left == PLAIN.steps


def test_another_config_starts_over(settings, character):
    train_chunk(settings, USER, "Mia", PLAIN, 10)
    other = dataclasses.replace(PLAIN, rank=2)
    assert train_chunk(settings, USER, "Mia", other, 4).step == 4
    assert train_chunk(settings, USER, "Mia", PLAIN, 4).step == 4  # rank 4's was replaced


def test_a_checkpoint_goes_on_only_with_the_optimizer_it_was_made_with(settings, character):
    train_chunk(settings, USER, "Mia", PLAIN, 6)  # "auto" is AdamW on the CPU
    explicit = dataclasses.replace(PLAIN, optimizer="adamw")
    assert train_chunk(settings, USER, "Mia", explicit, 4).step == 10
    eight_bit = dataclasses.replace(PLAIN, optimizer="adamw8bit")  # as "auto" is on a GPU
    assert train_chunk(settings, USER, "Mia", eight_bit, 4).step == 4


def test_corrupt_checkpoint_starts_over_and_is_kept_aside(settings, character, reference):
    train_character(settings, USER, "Mia", PLAIN, chunk_steps=8, max_chunks=1)
    (checkpoint_dir(settings) / STATE_FILE).write_bytes(b"\x00garbage")
    result = train_character(settings, USER, "Mia", PLAIN)
    assert result.done and len(result.warnings) == 1
    aside = [p.name for p in checkpoint_dir(settings).glob(f"{STATE_FILE}.corrupt-*")]
    assert len(aside) == 1 and result.warnings[0] == (
        f"the saved training progress couldn't be read (a damaged checkpoint, kept aside as "
        f"{aside[0]}), so training started over")  # no server path, no torch advice
    assert_same_adapter(adapter_files(settings), reference[PLAIN])


class OtherProcess:
    """An Accelerator as a process other than the main one of `accelerate launch` sees it."""

    is_main_process = False

    def __init__(self, accelerator):
        self._accelerator = accelerator

    def __getattr__(self, name):
        return getattr(self._accelerator, name)


def test_only_the_main_process_sets_a_corrupt_checkpoint_aside(settings, character, monkeypatch):
    train_chunk(settings, USER, "Mia", PLAIN, 4)
    state = checkpoint_dir(settings) / STATE_FILE
    state.write_bytes(b"\x00garbage")
    with monkeypatch.context() as patch:
        make = train.make_accelerator
        patch.setattr(train, "make_accelerator", lambda hardware: OtherProcess(make(hardware)))
        result = train_chunk(settings, USER, "Mia", PLAIN, 2)
    assert (result.step, result.warning) == (2, "")
    assert state.read_bytes() == b"\x00garbage"  # left for the main process, which warns
    result = train_chunk(settings, USER, "Mia", PLAIN, 2)
    assert result.step == 2 and "started over" in result.warning
    assert len(list(state.parent.glob(f"{STATE_FILE}.corrupt-*"))) == 1


def test_estimate_before_and_during_training(settings, character):
    before = estimate_character(settings, USER, "Mia", FULL)
    assert (before.steps_left, before.class_images_to_make) == (24, 2)
    train_character(settings, USER, "Mia", FULL, chunk_steps=10, max_chunks=1)
    during = estimate_character(settings, USER, "Mia", FULL)
    assert (during.steps_left, during.class_images_to_make) == (14, 0)
    # Every phase timed on this CPU by that chunk but saving, which has a rough figure.
    assert during.source == "table" and during.seconds > 0
    assert set(during.phases) == {"load", "setup", "steps", "validation image", "save"}


def test_character_without_crops_is_a_clear_error(settings, character):
    record = settings.data_dir / "users" / USER / "characters" / "mia" / "character.json"
    data = json.loads(record.read_text())
    (settings.data_dir / "users" / USER / "characters" / "mia" / data["crops"][1]["file"]).unlink()
    with pytest.raises(TrainingError, match="crop crops/02.png can't be read"):
        train_character(settings, USER, "Mia", PLAIN)
    record.write_text(json.dumps({**data, "crops": []}))
    with pytest.raises(TrainingError, match="Mia has no photos to train on"):
        train_character(settings, USER, "Mia", PLAIN)


def test_model_that_cannot_load_names_the_setting(settings, character, tmp_path):
    broken = dataclasses.replace(settings, base_model=str(tmp_path / "missing-model"))
    with pytest.raises(models.ModelUnavailableError, match="TALEWEAVER_BASE_MODEL"):
        train_character(broken, USER, "Mia", PLAIN)


def test_out_of_memory_mid_chunk_says_what_to_lower_and_leaves_the_pipeline_as_found(
        settings, character, monkeypatch):
    pipe = models.load_pipeline(settings)
    pipe("warm-up", num_inference_steps=1, height=64, width=64)
    before = pipeline_snapshot(pipe)
    step = train.TrainingRun.step

    def no_memory_at_step_3(self, k):
        if k == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step(self, k)

    monkeypatch.setattr(train.TrainingRun, "step", no_memory_at_step_3)
    config = dataclasses.replace(FULL, gradient_checkpointing="on")
    with pytest.raises(TrainingError, match="ran out of memory.*lower batch_size or rank.*quantize"):
        train_character(settings, USER, "Mia", config)
    assert_same_pipeline(before, pipeline_snapshot(pipe))
    assert not (checkpoint_dir(settings) / STATE_FILE).exists()


def test_quantization_needs_a_gpu(settings, character):
    with pytest.raises(TrainingError, match="quantize='8bit' needs a CUDA GPU"):
        train_character(settings, USER, "Mia", dataclasses.replace(PLAIN, quantize="8bit"))


CLI_OPTIONS = ["--rank", "4", "--no-prior-preservation", "--set", "warmup_steps=0",
               "--set", "validation=on", "--set", "validation_steps=2"]


@pytest.fixture
def cli_env(settings, monkeypatch):
    """TALEWEAVER_* variables for these settings, set here and returned for subprocesses, which
    also get this process's thread count (CPU results are bitwise equal only at equal counts)."""
    env = {"TALEWEAVER_BASE_MODEL": settings.base_model, "TALEWEAVER_VAE": "",
           "TALEWEAVER_DEVICE": "cpu", "TALEWEAVER_RESOLUTION": "64",
           "TALEWEAVER_DATA_DIR": str(settings.data_dir),
           "TALEWEAVER_SAFETY_MODEL": settings.safety_model}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def test_cli_chunk_steps_stop_and_the_same_command_goes_on(settings, character, cli_env,
                                                          reference, capsys):
    command = ["train", "Mia", "--steps", "20", "--chunk-steps", "8", *CLI_OPTIONS]
    for expected in ("step 8 of 20", "step 16 of 20", "Mia's adapter is ready after 20 steps"):
        assert cli.main(command) == 0
        out, err = capsys.readouterr()
        assert expected in out
    assert "Training Mia (person preset, 20 steps)" in err and "20/20" in err
    assert_same_adapter(adapter_files(settings), reference[PLAIN])


def test_cli_estimate_and_errors(settings, character, cli_env, capsys):
    assert cli.main(["train", "Mia", "--estimate", "--json", "--preset", "pet",
                     "--set", "snr_gamma=0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["preset"] == "pet" and report["config"]["snr_gamma"] == 0
    assert report["estimate"]["steps_left"] == report["config"]["steps"]
    assert not (settings.data_dir / "users" / USER / "characters" / "mia" / "adapter").exists()
    assert cli.main(["train", "Mia", "--set", "lernrate=1"]) == 1
    assert "unknown training setting lernrate" in capsys.readouterr().err
    assert cli.main(["train", "Nobody"]) == 1
    assert "no character named 'Nobody'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_process_loses_only_its_chunk(settings, character, cli_env):
    steps = 60
    config = dataclasses.replace(PLAIN, steps=steps)
    train_character(settings, USER, "Mia", config, chunk_steps=10, max_chunks=1)
    command = [sys.executable, "-m", "pipeline", "train", "Mia", "--steps", str(steps), *CLI_OPTIONS]
    killed = subprocess.Popen(command, env=cli_env, text=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    seen = ""
    while not re.search(rf"\b(1[3-9]|[2-9]\d)/{steps}\b", seen):  # a few steps past the checkpoint
        char = killed.stderr.read(1)
        assert char, f"the run ended before it could be killed: {seen[-500:]}"
        seen += char
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((checkpoint_dir(settings) / PROGRESS_FILE).read_text())["step"] == 10
    last = subprocess.run([*command, "--json"], env=cli_env, capture_output=True, text=True,
                          timeout=120)
    assert last.returncode == 0, last.stderr
    report = json.loads(last.stdout)
    assert report["done"] and report["step"] == steps and report["chunks"] == 1
    resumed = adapter_files(settings)
    uninterrupted = dataclasses.replace(settings, data_dir=settings.data_dir.parent / "whole")
    make_mia(uninterrupted)
    train_character(uninterrupted, USER, "Mia", config)
    assert_same_adapter(resumed, adapter_files(uninterrupted))


@pytest.mark.slow
def test_mixed_precision_trains_float32_lora_on_a_bfloat16_model(settings, character, cli_env):
    env = {**cli_env, "TALEWEAVER_DTYPE": "bfloat16"}  # another process: one precision each
    done = subprocess.run([sys.executable, "-m", "pipeline", "train", "Mia", "--steps", "6",
                           *CLI_OPTIONS], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    weights, image = adapter_files(settings)
    assert {v.dtype for v in weights.values()} == {torch.float32}
    assert all(torch.isfinite(v).all() for v in weights.values()) and image.std() > 0


@pytest.mark.slow
def test_accelerate_launch_trains_data_parallel(settings, character, cli_env, reference):
    full = ["--steps", "24", "--rank", "4", "--train-text-encoder", "--set", "alpha=8",
            "--set", "warmup_steps=5", "--set", "class_images=2", "--set", "offset_noise=0.05",
            "--set", "validation=on", "--set", "validation_steps=2"]  # FULL: text encoders
    # (some LoRA gets no gradient), prior preservation
    command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
               "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "pipeline",
               "train", "Mia", *full]
    done = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "adapter is ready after 24 steps" in done.stdout
    class_images = settings.data_dir / "users" / USER / "class_images" / "girl"
    assert sorted(p.name for p in class_images.glob("*.png")) == ["000.png", "001.png"]
    weights, _ = adapter_files(settings)
    single, _ = reference[FULL]
    # Two processes average gradients over different batches: not the one-process result
    # (two unconnected processes would each have written exactly that).
    assert weights.keys() == single.keys()
    assert any(not torch.equal(weights[k], single[k]) for k in weights)


class FakeClock:
    """The trainer's clock, one second further at every look: a chunk bounded to N seconds
    trains about N steps, whatever the machine."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now

    perf_counter = staticmethod(time.perf_counter)


class PowerCut(Exception):
    """Stands for a crash: nothing is saved when it happens."""


def test_training_checkpoints_periodically_so_a_crash_loses_little(settings, character,
                                                                   reference, monkeypatch):
    monkeypatch.setattr(train, "time", FakeClock())
    periodic = dataclasses.replace(settings, checkpoint_seconds=10)

    def crash_at_15(progress):
        if progress.done == 15:
            raise PowerCut

    with pytest.raises(PowerCut):
        train_character(periodic, USER, "Mia", PLAIN, on_progress=crash_at_15)
    saved = json.loads((checkpoint_dir(settings) / PROGRESS_FILE).read_text())["step"]
    assert 5 <= saved < 15  # the last periodic checkpoint, not step 0
    steps = []
    result = train_character(periodic, USER, "Mia", PLAIN,
                             on_progress=lambda progress: steps.append(progress.done))
    assert result.done and steps[0] == saved + 1  # it goes on from the checkpoint
    assert_same_adapter(adapter_files(settings), reference[PLAIN])


def test_cancel_stops_after_the_step_with_a_checkpoint_and_training_goes_on(settings, character,
                                                                           reference):
    from pipeline.progress import Cancelled

    seen = []

    def cancel_at_5(progress):
        seen.append(progress.done)
        if progress.done == 5:
            raise Cancelled()

    with pytest.raises(Cancelled, match="training Mia stopped at step 5 of 20"):
        train_character(settings, USER, "Mia", PLAIN, on_progress=cancel_at_5)
    assert seen[-1] == 5  # not one step more
    assert json.loads((checkpoint_dir(settings) / PROGRESS_FILE).read_text())["step"] == 5
    assert not (settings.data_dir / "users" / USER / "characters" / "mia" / "adapter").exists()
    assert train_character(settings, USER, "Mia", PLAIN).done
    assert_same_adapter(adapter_files(settings), reference[PLAIN])


def test_ctrl_c_in_the_cli_stops_training_at_the_next_step_with_a_checkpoint(
        settings, character, cli_env, monkeypatch, capsys):
    import signal

    report = train._progress

    def interrupted_at_3(step, *args):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C in the terminal
        return report(step, *args)

    monkeypatch.setattr(train, "_progress", interrupted_at_3)
    assert cli.main(["train", "Mia", "--steps", "20", *CLI_OPTIONS]) == 130
    err = capsys.readouterr().err
    assert "stopped: training Mia stopped at step 3 of 20" in err and "Traceback" not in err
    assert json.loads((checkpoint_dir(settings) / PROGRESS_FILE).read_text())["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_validation_image_the_safety_check_flags_is_not_kept(settings, character, tmp_path):
    from pipeline.testing import save_tiny_safety_model

    flagging = dataclasses.replace(settings, safety_model=str(
        save_tiny_safety_model(tmp_path / "flags", flags_everything=True)))
    result = train_character(flagging, USER, "Mia", PLAIN)
    assert result.done and not result.validation_image.exists()
    assert result.warnings == ("no validation image: the picture safety check flagged every try",)
    assert (result.adapter_dir / ADAPTER_WEIGHTS).is_file()


def test_an_adapter_is_out_of_date_once_the_character_changes(settings, character):
    short = dataclasses.replace(PLAIN, steps=4)
    train_character(settings, USER, "Mia", short)
    assert adapter_out_of_date(settings, USER, "Mia") == ""
    assert estimate_character(settings, USER, "Mia", short).steps_left == 0
    store = CharacterStore(settings, USER)
    store.update("Mia", kind="woman")
    assert "its kind" in adapter_out_of_date(settings, USER, "Mia")
    assert estimate_character(settings, USER, "Mia", short).steps_left == 4  # from the start
    store.add_crops("Mia", make_crops(1, settings.resolution, seed=9))
    assert adapter_out_of_date(settings, USER, "Mia").startswith(
        "its photos changed since it was trained (4 then, 5 now); its kind")
    again = train_character(settings, USER, "Mia", short)
    assert (again.chunks, again.step) == (1, 4)
    assert adapter_out_of_date(settings, USER, "Mia") == ""
