import dataclasses
import math

import pytest

from pipeline.hardware import Hardware
from pipeline.settings import Settings
from pipeline.training.config import TrainConfig, preset_config
from pipeline.training.estimate import (FORWARD_SHARE, KNOWN_STEP_SECONDS, ROUGH_GPU_SECONDS,
                                        STEP_TIMES_FILE, ZEROGPU_FREE_DAILY_SECONDS,
                                        class_image_plan, estimate_training, image_seconds,
                                        record_image_time, record_phase_time, record_step_time,
                                        samples_per_step, step_seconds, validation_estimate)

CPU = Hardware(kind="cpu", device="cpu", dtype="float32", name="CPU")
H100 = Hardware(kind="cuda", device="cuda", dtype="bfloat16", name="NVIDIA H100 80GB HBM3")
L4 = Hardware(kind="cuda", device="cuda", dtype="bfloat16", name="NVIDIA L4")
L40S = Hardware(kind="cuda", device="cuda", dtype="bfloat16", name="NVIDIA L40S")
ZEROGPU = Hardware(kind="zerogpu", device="cuda", dtype="bfloat16", name="ZeroGPU")


@pytest.fixture
def big(tmp_path):
    return Settings(data_dir=tmp_path, resolution=1024)


def test_nothing_known_on_the_cpu_until_measured(big):
    estimate = estimate_training(big, TrainConfig(steps=500), hardware=CPU)
    assert estimate.seconds is None and estimate.source == "unknown"
    assert estimate.describe() == (
        "500 steps; not timed on CPU yet: loading the model, preparing the photos and the "
        "training steps (timed as they run); the rest about 5 s (saving 5 s)")  # no validation


def test_on_the_cpu_every_phase_is_measured_before_it_is_counted(big):
    """The issue's case: the steps alone were timed, so the app said 62 s for a run whose 24
    class images took most of 9 to 15 minutes. Now an untimed phase is named, never guessed."""
    person = TrainConfig(steps=640, prior_preservation=True, class_images=24, validation="on",
                         validation_steps=25, validation_size=1024)
    record_step_time(big, CPU, person, 0.5)
    partly = estimate_training(big, person, class_images_missing=24, hardware=CPU)
    assert partly.seconds is None and partly.phases["steps"] == pytest.approx(320)
    assert partly.phases["class images"] is None
    assert "not timed on CPU yet: loading the model, the class images, preparing the photos " \
           "and the validation image" in partly.describe()
    assert "the rest about 5 min (the training steps 5 min, saving 5 s)" in partly.describe()

    side, steps = class_image_plan(big, CPU)
    assert (side, steps) == (512, 12)  # smaller and fewer on the CPU
    record_image_time(big, CPU, 30.0, steps, side, side)  # 30 s a class image
    for phase, seconds in (("load", 12.0), ("setup", 4.0), ("save", 1.0)):
        record_phase_time(big, CPU, phase, seconds)
    timed = estimate_training(big, person, class_images_missing=24, hardware=CPU)
    validation = 30.0 / (12 * 512 * 512) * 25 * 1024 * 1024  # 25 steps at 1024 px
    assert timed.phases == pytest.approx({"load": 12.0, "class images": 24 * 30.0, "setup": 4.0,
                                          "steps": 320.0, "validation image": validation,
                                          "save": 1.0})
    assert timed.seconds == pytest.approx(sum(timed.phases.values()))
    assert timed.source == "measured"
    assert timed.describe().startswith("about 22 min of CPU time for 640 steps and 24 class "
                                       "images (measured on CPU: loading the model 12 s, the "
                                       "class images 12 min")
    loaded = estimate_training(big, person, class_images_missing=24, model_loaded=True,
                               hardware=CPU)
    assert loaded.phases["load"] == 0 and loaded.seconds == pytest.approx(timed.seconds - 12)


def test_gpu_phases_have_rough_figures_until_measured(big):
    config = TrainConfig(steps=100, prior_preservation=False)
    rough = estimate_training(big, config, hardware=H100)
    assert rough.source == "table"
    assert rough.phases["load"] == ROUGH_GPU_SECONDS["load"]
    assert rough.phases["setup"] == ROUGH_GPU_SECONDS["setup"]
    record_phase_time(big, H100, "load", 8.0)
    assert estimate_training(big, config, hardware=H100).phases["load"] == 8.0


def test_table_figures_by_gpu_name(big):
    table = dict(KNOWN_STEP_SECONDS)
    config = TrainConfig(prior_preservation=False)
    assert step_seconds(big, H100, config) == (table["H100"], "table")
    assert step_seconds(big, L40S, config) == (table["L40S"], "table")  # not L4's
    assert step_seconds(big, L4, config) == (table["L4"], "table")
    doubled, _ = step_seconds(big, H100, TrainConfig(prior_preservation=True))
    assert doubled == pytest.approx(2 * table["H100"])
    small, _ = step_seconds(dataclasses.replace(big, resolution=512), H100, config)
    assert small == pytest.approx(table["H100"] / 4)


def test_measured_time_wins_and_scales_with_pixels_and_batch(big):
    config = TrainConfig(prior_preservation=False)
    record_step_time(big, H100, config, 0.5)
    assert (big.data_dir / STEP_TIMES_FILE).is_file()
    assert step_seconds(big, H100, config) == (pytest.approx(0.5), "measured")
    assert step_seconds(big, H100, dataclasses.replace(config, batch_size=2))[0] == pytest.approx(1.0)
    half = dataclasses.replace(big, resolution=512)
    assert step_seconds(half, H100, config)[0] == pytest.approx(0.125)
    other_option = dataclasses.replace(config, quantize="8bit")
    assert step_seconds(big, H100, other_option)[1] == "table"
    assert step_seconds(big, L4, config)[1] == "table"


def test_estimate_adds_every_phase(big):
    config = TrainConfig(steps=600, prior_preservation=True, validation_steps=25,
                         validation_size=1024)
    record_step_time(big, H100, config, 0.6)
    per_step = 0.6
    per_image_step = 2 * FORWARD_SHARE * per_step / samples_per_step(config)
    estimate = estimate_training(big, config, steps_done=100, class_images_missing=4, hardware=H100)
    assert estimate.steps_left == 500 and estimate.class_images_to_make == 4
    assert estimate.seconds_per_step == pytest.approx(per_step)
    rough = sum(ROUGH_GPU_SECONDS.values())  # load, setup and save: not measured yet
    assert estimate.seconds == pytest.approx(500 * per_step + per_image_step * (4 * 25 + 25)
                                             + rough)
    assert estimate.source == "table"
    text = estimate.describe()
    assert "500 steps and 4 class images" in text and "rough figure for NVIDIA H100" in text
    for phase in ("load", "setup", "save"):
        record_phase_time(big, H100, phase, ROUGH_GPU_SECONDS[phase])
    record_image_time(big, H100, per_image_step * 25, 25, 1024, 1024)
    measured = estimate_training(big, config, steps_done=100, class_images_missing=4,
                                 hardware=H100)
    assert measured.source == "measured" and "measured on NVIDIA H100" in measured.describe()
    assert measured.seconds == pytest.approx(estimate.seconds)
    smaller = dataclasses.replace(config, validation_size=512)  # a quarter of the pixels
    assert estimate_training(big, smaller, steps_done=100, hardware=H100).seconds == \
        pytest.approx(500 * per_step + per_image_step * 25 / 4 + rough)
    off = dataclasses.replace(config, validation="off")
    assert estimate_training(big, off, steps_done=100, hardware=H100).seconds == \
        pytest.approx(500 * per_step + rough)


def test_the_validation_image_is_drawn_on_a_gpu_and_not_on_the_cpu_unless_asked(big):
    config = TrainConfig(validation_steps=16)  # "auto", 768 px at most
    record_image_time(big, H100, 1.0, 1, 1000, 1000)  # a second a step per megapixel
    record_image_time(big, CPU, 1.0, 1, 1000, 1000)
    assert validation_estimate(big, H100, config) == (pytest.approx(16 * 0.768 ** 2), "measured")
    assert validation_estimate(big, CPU, config) == (0.0, "measured")  # none drawn
    asked = dataclasses.replace(config, validation="on")
    small = dataclasses.replace(big, resolution=512)  # never above the training resolution
    assert validation_estimate(small, CPU, asked)[0] == pytest.approx(16 * 0.512 ** 2)
    assert validation_estimate(big, H100, dataclasses.replace(config, validation="off")) == \
        (0.0, "measured")


def test_image_seconds_are_measured_or_come_from_a_gpu_step_time(big):
    config = TrainConfig(prior_preservation=True)
    assert image_seconds(big, CPU, config, 25) is None
    record_step_time(big, CPU, config, 0.5)
    assert image_seconds(big, CPU, config, 25) is None  # a CPU's step says nothing of pictures
    per_sample = dict(KNOWN_STEP_SECONDS)["H100"]  # the table is per sample; prior doubles steps
    assert image_seconds(big, H100, config, 30) == pytest.approx(30 * 2 * FORWARD_SHARE * per_sample)
    assert image_seconds(big, H100, config, 30, 512) == pytest.approx(
        30 * 2 * FORWARD_SHARE * per_sample / 4)
    record_image_time(big, CPU, 6.0, 12, 512, 512)
    assert image_seconds(big, CPU, config, 24, 256) == pytest.approx(3.0)


def test_zerogpu_says_plainly_when_a_free_account_needs_several_days(big):
    person = preset_config("person", 8)
    estimate = estimate_training(big, person, class_images_missing=24, hardware=ZEROGPU)
    days = math.ceil(estimate.seconds / ZEROGPU_FREE_DAILY_SECONDS)
    assert estimate.free_days == days > 1
    text = estimate.describe()
    assert "640 steps and 24 class images (rough figure for ZeroGPU, refined as it runs: " \
           "loading the model 30 s, the class images" in text
    assert "more than the 5 min a day a free Hugging Face account gets on ZeroGPU" in text
    assert f"at least {days} days" in text and "goes on from there" in text
    last_steps = estimate_training(big, person, steps_done=620, hardware=ZEROGPU)
    assert last_steps.free_days == 1 and "a day" not in last_steps.describe()
    elsewhere = estimate_training(big, person, class_images_missing=24, hardware=L4)
    assert elsewhere.free_days is None and "a day" not in elsewhere.describe()


def test_counts_in_words(big):
    text = estimate_training(big, TrainConfig(steps=1), class_images_missing=1,
                             hardware=H100).describe()
    assert "for 1 step and 1 class image (" in text


def test_finished_run_needs_nothing(big):
    estimate = estimate_training(big, TrainConfig(steps=300), steps_done=300, hardware=H100)
    assert estimate.steps_left == 0
    assert "nothing left to train" in estimate.describe()


def test_damaged_step_times_are_ignored(big):
    (big.data_dir / STEP_TIMES_FILE).write_text("{not json")
    assert step_seconds(big, H100, TrainConfig())[1] == "table"
    record_step_time(big, H100, TrainConfig(), 0.4)
    assert step_seconds(big, H100, TrainConfig())[1] == "measured"
