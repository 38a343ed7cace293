import dataclasses
import math

import pytest

from pipeline.hardware import Hardware
from pipeline.settings import Settings
from pipeline.training.config import TrainConfig, preset_config
from pipeline.training.estimate import (FORWARD_SHARE, IMAGE_STEP, KNOWN_STEP_SECONDS,
                                        STEP_TIMES_FILE, ZEROGPU_FREE_DAILY_SECONDS,
                                        estimate_training, image_seconds, measured,
                                        record_measured, record_step_time, samples_per_step,
                                        step_seconds, validation_image_steps)

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
    assert "no time estimate yet on CPU" in estimate.describe()


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


def test_estimate_adds_steps_class_images_and_validation(big):
    config = TrainConfig(steps=600, prior_preservation=True, validation_steps=25,
                         validation_size=1024)
    record_step_time(big, H100, config, 0.6)
    per_step = 0.6
    per_image_step = 2 * FORWARD_SHARE * per_step / samples_per_step(config)
    estimate = estimate_training(big, config, steps_done=100, class_images_missing=4, hardware=H100)
    assert estimate.steps_left == 500 and estimate.class_images_to_make == 4
    assert estimate.seconds_per_step == pytest.approx(per_step)
    assert estimate.seconds == pytest.approx(500 * per_step + per_image_step * (4 * 25 + 25))
    assert estimate.source == "measured"
    text = estimate.describe()
    assert "500 steps and 4 class images" in text and "measured on NVIDIA H100" in text
    smaller = dataclasses.replace(config, validation_size=512)  # a quarter of the pixels
    assert estimate_training(big, smaller, steps_done=100, hardware=H100).seconds == \
        pytest.approx(500 * per_step + per_image_step * 25 / 4)
    off = dataclasses.replace(config, validation="off")
    assert estimate_training(big, off, steps_done=100, hardware=H100).seconds == \
        pytest.approx(500 * per_step)


def test_the_validation_image_is_drawn_on_a_gpu_and_not_on_the_cpu_unless_asked(big):
    config = TrainConfig(validation_steps=16)  # "auto", 768 px at most
    assert validation_image_steps(big, H100, config) == pytest.approx(16 * 0.75 ** 2)
    assert validation_image_steps(big, ZEROGPU, config) == pytest.approx(9)
    assert validation_image_steps(big, CPU, config) == 0
    asked = dataclasses.replace(config, validation="on")
    assert validation_image_steps(dataclasses.replace(big, resolution=512), CPU, asked) == 16
    assert validation_image_steps(big, H100, dataclasses.replace(config, validation="off")) == 0


def test_measured_image_steps_and_phases_win_over_the_share_of_a_training_step(big):
    config = TrainConfig(prior_preservation=False)
    record_step_time(big, H100, config, 0.6)
    assert measured(big, H100, IMAGE_STEP) is None
    record_measured(big, H100, IMAGE_STEP, 0.05)  # seconds a guided step per megapixel
    record_measured(big, H100, "pipeline load", 12.5)
    record_measured(big, H100, "page watercolor", 7.25)
    assert image_seconds(big, H100, config, 30) == pytest.approx(30 * 0.05 * 1.048576)
    assert measured(big, H100, "pipeline load") == 12.5
    assert measured(big, H100, "page watercolor") == 7.25
    assert measured(big, L4, "pipeline load") is None  # per GPU
    assert step_seconds(big, H100, config) == (pytest.approx(0.6), "measured")  # untouched
    with pytest.raises(ValueError, match="unknown measurement 'coffee'"):
        record_measured(big, H100, "coffee", 1.0)


def test_image_seconds_need_a_step_time(big):
    config = TrainConfig(prior_preservation=True)
    assert image_seconds(big, CPU, config, 25) is None
    per_sample = dict(KNOWN_STEP_SECONDS)["H100"]  # the table is per sample; prior doubles steps
    assert image_seconds(big, H100, config, 30) == pytest.approx(30 * 2 * FORWARD_SHARE * per_sample)


def test_zerogpu_says_plainly_when_a_free_account_needs_several_days(big):
    person = preset_config("person", 8)
    estimate = estimate_training(big, person, class_images_missing=24, hardware=ZEROGPU)
    days = math.ceil(estimate.seconds / ZEROGPU_FREE_DAILY_SECONDS)
    assert estimate.free_days == days > 1
    text = estimate.describe()
    assert "640 steps and 24 class images (rough figure for ZeroGPU" in text
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
