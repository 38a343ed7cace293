from pathlib import Path

import pytest

from pipeline.settings import Settings, SettingsError


def test_defaults_are_production_sdxl():
    s = Settings.from_env({})
    assert s.base_model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert s.vae == "madebyollin/sdxl-vae-fp16-fix"
    assert s.data_dir == Path("data")
    assert (s.device, s.dtype, s.max_pages) == ("auto", "auto", 40)


def test_reads_prefixed_variables_and_ignores_others():
    s = Settings.from_env({"TALEWEAVER_BASE_MODEL": "/models/tiny", "TALEWEAVER_VAE": "",
                           "TALEWEAVER_DATA_DIR": "~/tw", "TALEWEAVER_MAX_PAGES": " 12 ",
                           "TALEWEAVER_DEVICE": "cuda:1", "TALEWEAVER_DTYPE": "bfloat16",
                           "HOME_ELSEWHERE": "x"})
    assert s.base_model == "/models/tiny" and s.vae == ""
    assert s.data_dir == Path("~/tw").expanduser()
    assert (s.max_pages, s.device, s.dtype) == (12, "cuda:1", "bfloat16")
    assert s.max_upload_bytes == 25 * 1024 * 1024


@pytest.mark.parametrize("env, names", [
    ({"TALEWEAVER_DEVICE": "gpu"}, ["TALEWEAVER_DEVICE", "cuda:N"]),
    ({"TALEWEAVER_DTYPE": "fp8"}, ["TALEWEAVER_DTYPE", "bfloat16"]),
    ({"TALEWEAVER_MAX_PAGES": "many"}, ["TALEWEAVER_MAX_PAGES", "whole number"]),
    ({"TALEWEAVER_MAX_PAGES": "0"}, ["TALEWEAVER_MAX_PAGES", "at least 1"]),
    ({"TALEWEAVER_RESOLUTION": "100"}, ["TALEWEAVER_RESOLUTION", "multiple of 8"]),
    ({"TALEWEAVER_MIN_PHOTOS": "30"}, ["TALEWEAVER_MIN_PHOTOS", "TALEWEAVER_MAX_PHOTOS"]),
    ({"TALEWEAVER_BASE_MODEL": " "}, ["TALEWEAVER_BASE_MODEL"]),
    ({"TALEWEAVER_DATA_DIR": ""}, ["TALEWEAVER_DATA_DIR", "folder"]),
    ({"TALEWEAVER_REQUIRE_LOGIN": "maybe"}, ["TALEWEAVER_REQUIRE_LOGIN", "always"]),
    ({"TALEWEAVER_MAX_PAGE": "3"}, ["TALEWEAVER_MAX_PAGE ", "TALEWEAVER_MAX_PAGES"]),
])
def test_invalid_values_name_the_variable_and_what_it_accepts(env, names):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    for name in names:
        assert name in str(err.value)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().max_pages = 3
