"""Shared fixtures: the tiny SDXL pipeline (built once per session) and per-test settings.

Every test runs offline: HF_HUB_OFFLINE is forced on before anything imports huggingface_hub.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _key in [k for k in os.environ if k.startswith("TALEWEAVER_")]:
    del os.environ[_key]

import pytest  # noqa: E402

from pipeline.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SDXL-architecture pipeline saved as a diffusers folder."""
    from pipeline.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture
def settings(tiny_model_dir, tmp_path):
    """Settings for one test: the tiny model on the CPU, 64-pixel crops, a fresh data folder."""
    return Settings(base_model=str(tiny_model_dir), vae="", data_dir=tmp_path / "data",
                    device="cpu", resolution=64)
