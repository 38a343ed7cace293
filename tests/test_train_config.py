import dataclasses
import json
import subprocess
import sys

import pytest

from pipeline.training.config import (PRESETS, RECORDED, TrainConfig, TrainingRecord,
                                      draws_validation, preset_config, preset_for_kind,
                                      validation_side)


def test_presets_differ_by_goal():
    person, pet, thing = (preset_config(goal, 8) for goal in ("person", "pet", "object"))
    assert person.prior_preservation and not pet.prior_preservation
    assert person.rank > pet.rank > thing.rank
    assert person.steps > thing.steps
    assert {c.preset for c in (person, pet, thing)} == {"person", "pet", "object"}


@pytest.mark.parametrize("goal", sorted(PRESETS))
def test_steps_scale_with_photos_within_bounds(goal):
    preset = PRESETS[goal]
    steps = [preset_config(goal, n).steps for n in (1, 4, 8, 12, 40)]
    assert steps == sorted(steps)
    assert steps[0] == preset.min_steps and steps[-1] == preset.max_steps
    assert preset_config(goal, 8).steps == min(preset.max_steps,
                                               max(preset.min_steps, 8 * preset.steps_per_photo))


def test_every_field_can_be_overridden():
    config = preset_config("pet", 5, steps=123, rank=4, alpha=8, quantize="8bit",
                           offset_noise=0.05, train_text_encoder=True)
    assert (config.steps, config.rank, config.lora_alpha, config.quantize) == (123, 4, 8, "8bit")
    assert config.offset_noise == 0.05 and config.train_text_encoder
    assert config.prior_preservation is False  # still the pet preset's choice


def test_alpha_defaults_to_rank():
    assert TrainConfig(rank=16).lora_alpha == 16
    assert TrainConfig(rank=16, alpha=4).lora_alpha == 4


def test_unknown_key_is_an_error_naming_known_settings():
    with pytest.raises(ValueError, match="unknown training setting lernrate.*known settings:.*learning_rate"):
        TrainConfig.from_dict({"lernrate": 1e-4})
    with pytest.raises(ValueError, match="unknown training setting"):
        preset_config("person", 4, rnak=4)


@pytest.mark.parametrize("field, value", [
    ("rank", 0), ("rank", 2.5), ("rank", True), ("steps", -1), ("learning_rate", 0),
    ("learning_rate", 3.0), ("snr_gamma", -1), ("optimizer", "sgd"), ("quantize", "16bit"),
    ("gradient_checkpointing", "yes"), ("flip", "no"), ("preset", "landscape"), ("alpha", 0),
    ("seed", -1), ("seed", 2 ** 32), ("validation", "yes"), ("validation_size", 32),
    ("validation_size", 500), ("validation_steps", 0),
])
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"training setting {field}="):
        TrainConfig(**{field: value})


def test_every_allowed_seed_seeds_the_step_generators():
    from pipeline.training.step import step_generator

    seed = TrainConfig(seed=2 ** 32 - 1).seed
    step_generator(seed, 10 ** 6, 7)  # no overflow in its 64-bit seed
    with pytest.raises(ValueError, match=r"seed=4294967296 is invalid: it accepts a whole number "
                                         r"from 0 to 4294967295"):
        TrainConfig(seed=2 ** 32)


def test_prior_preservation_needs_class_images():
    with pytest.raises(ValueError, match="class_images"):
        TrainConfig(prior_preservation=True, class_images=0)
    assert TrainConfig(prior_preservation=False, class_images=0).class_images == 0


def test_unknown_preset_and_no_photos_are_errors():
    with pytest.raises(ValueError, match="preset 'style' is unknown"):
        preset_config("style", 4)
    with pytest.raises(ValueError, match="at least one photo"):
        preset_config("person", 0)


def test_config_round_trips_through_json_and_is_frozen():
    config = preset_config("object", 6, alpha=4, seed=7)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rank = 3


def test_training_key_ignores_only_the_length_of_the_run_and_the_validation_image():
    base = TrainConfig()
    picture = dict(validation="off", validation_steps=3, validation_size=512)
    assert base.training_key() == dataclasses.replace(base, steps=9, **picture).training_key()
    assert base.training_key() != dataclasses.replace(base, rank=8).training_key()
    assert base.same_adapter(dataclasses.replace(base, **picture))
    assert not base.same_adapter(dataclasses.replace(base, steps=9))


def test_the_validation_image_is_off_on_the_cpu_unless_asked_and_small():
    auto, on, off = (TrainConfig(validation=v) for v in ("auto", "on", "off"))
    assert [draws_validation(c, has_gpu=True) for c in (auto, on, off)] == [True, True, False]
    assert [draws_validation(c, has_gpu=False) for c in (auto, on, off)] == [False, True, False]
    assert validation_side(auto, 1024) == 768 and validation_side(auto, 128) == 128


RECORD = TrainingRecord(base_model="stabilityai/stable-diffusion-xl-base-1.0", resolution=1024,
                        trigger="ohwx", instance_prompt="a photo of ohwx girl",
                        validation_prompt="ohwx girl reading a book in a garden",
                        config=preset_config("person", 6))


def test_training_records_from_before_photos_were_kept_still_load():
    values = RECORD.to_dict()
    del values["photos"]
    assert TrainingRecord.from_dict(values).photos == ""


def test_training_record_is_one_flat_table_that_round_trips():
    values = json.loads(json.dumps(RECORD.to_dict()))
    assert list(values)[:len(RECORDED)] == list(RECORDED)  # what it trained on comes first
    assert values["rank"] == RECORD.config.rank and values["resolution"] == 1024
    assert not set(RECORDED) & {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainingRecord.from_dict(values) == RECORD
    with pytest.raises(ValueError, match="a JSON object, not list"):
        TrainingRecord.from_dict([values])


@pytest.mark.parametrize("change, message", [
    (lambda v: v.pop("base_model"), "training record without base_model"),
    (lambda v: v.update(lernrate=1), "unknown training setting lernrate"),
    (lambda v: v.update(resolution="big"), "resolution='big' is invalid"),
    (lambda v: v.update(trigger=""), "trigger='' is invalid"),
])
def test_training_record_is_strict(change, message):
    values = RECORD.to_dict()
    change(values)
    with pytest.raises(ValueError, match=message):
        TrainingRecord.from_dict(values)


def test_preset_for_kind():
    assert preset_for_kind("Dog") == "pet" and preset_for_kind("guinea pig") == "pet"
    assert preset_for_kind("girl") == "person" and preset_for_kind("grandma") == "person"


def test_does_not_import_torch():
    code = "import sys, pipeline.training.config, pipeline.training.estimate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("field, value", [
    ("steps", 10 ** 9), ("batch_size", 1000), ("rank", 4096), ("class_images", 10 ** 6),
    ("validation_steps", 10 ** 6), ("warmup_steps", 10 ** 7), ("alpha", 10 ** 6),
    ("learning_rate", float("nan")), ("learning_rate", float("inf")), ("learning_rate", 0.5),
    ("snr_gamma", float("inf")), ("offset_noise", float("nan")), ("prior_weight", 1e9),
    ("max_grad_norm", -float("inf")), ("steps", "600"), ("steps", None), ("steps", 600.5),
    ("steps", float("nan")), ("rank", [16]), ("weight_decay", "0.01"),
])
def test_every_number_has_a_range_and_a_type(field, value):
    with pytest.raises(ValueError, match=f"training setting {field}=.* is invalid: it accepts"):
        TrainConfig(**{field: value})


def test_a_whole_number_written_with_a_point_is_that_number():
    config = TrainConfig.from_dict({"steps": 600.0, "rank": 16.0})
    assert (config.steps, config.rank) == (600, 16) and isinstance(config.steps, int)


def test_a_huge_value_is_repeated_short_in_the_message():
    with pytest.raises(ValueError) as refused:
        TrainConfig(optimizer="x" * 10_000)
    assert len(str(refused.value)) < 200
