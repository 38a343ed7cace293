"""Taleweaver's settings: one frozen dataclass read from TALEWEAVER_* environment variables.

Every other module takes a Settings as an argument instead of reading the environment, so a
test can build one with `Settings(data_dir=tmp_path, ...)` and nothing leaks between tests.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

PREFIX = "TALEWEAVER_"
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")
LOGIN_MODES = ("auto", "always", "never")
SWITCHES = ("on", "off")


class SettingsError(ValueError):
    """A setting has a value Taleweaver cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Where models come from, where data goes, and the limits that protect the machine."""

    base_model: str = "stabilityai/stable-diffusion-xl-base-1.0"  # Hub id or local folder
    vae: str = "madebyollin/sdxl-vae-fp16-fix"  # "" uses the base model's own VAE
    data_dir: Path = Path("data")  # users' characters, adapters and books
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    dtype: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU), float32, float16, bfloat16
    resolution: int = 1024  # side of the square training crops, in pixels
    min_photos: int = 3  # accepted photos needed to save a character
    max_photos: int = 20  # photos accepted per character
    max_upload_mb: int = 25  # size limit of one uploaded photo
    max_pages: int = 40  # pages per book
    max_page_chars: int = 1000  # characters of story text per page
    story_model: str = "Qwen/Qwen2.5-1.5B-Instruct"  # instruct LM that drafts stories
    # Swin2SR model that enlarges pictures for print on a GPU; "lanczos": always a plain resize
    upscaler: str = "caidas/swin2SR-classical-sr-x4-64"
    require_login: str = "auto"  # auto (required on a Hugging Face Space), always, never
    local_user: str = "local"  # the one user when nobody signs in
    safety_model: str = "Falconsai/nsfw_image_detection"  # image classifier every picture passes
    checkpoint_seconds: int = 120  # training saves a checkpoint (and lets others use the GPU) this often
    gpu_jobs_per_user: int = 2  # GPU jobs (training, drawing, drafting) one user may have at once
    max_sessions: int = 500  # app sessions (browser tabs, API clients) whose state is kept
    adapter_cache: int = 8  # characters' adapters kept loaded between pictures (0: none)
    cpu_threads: int = 0  # torch's CPU threads; 0 chooses for the machine (hardware.cpu_threads)
    face_pass: str = "on"  # on: redraw each character's head with only its adapter; off
    face_pass_strength: float = 0.5  # how much of a head the second pass redraws (0-1]
    face_pass_margin: float = 0.6  # room around a face in the redrawn square, in face sides
    redraw_below: int = 45  # redraw a page whose weakest likeness is under this (0-100)
    redraw_tries: int = -1  # more seeds at most for such a page; -1: 0 on ZeroGPU, else 2
    job_image: str = ""  # image Hugging Face Jobs run; "" is this Space's own (SPACE_ID)
    job_flavor: str = "l4x1"  # the Jobs hardware offered first (list_jobs_hardware's names)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        _check(bool(self.base_model.strip()), "BASE_MODEL", self.base_model,
               "a Hub model id or a local folder")
        device_ok = self.device in DEVICES or (
            self.device.startswith("cuda:") and self.device[5:].isdigit()
        )
        _check(device_ok, "DEVICE", self.device, "auto, cpu, cuda or cuda:N")
        _check(self.dtype in DTYPES, "DTYPE", self.dtype, ", ".join(DTYPES))
        _check(self.require_login in LOGIN_MODES, "REQUIRE_LOGIN", self.require_login,
               ", ".join(LOGIN_MODES))
        _check(self.resolution >= 64 and self.resolution % 8 == 0, "RESOLUTION",
               self.resolution, "a multiple of 8, at least 64")
        for name, low in (("min_photos", 1), ("max_photos", 1), ("max_upload_mb", 1),
                          ("max_pages", 1), ("max_page_chars", 50), ("checkpoint_seconds", 10),
                          ("gpu_jobs_per_user", 1), ("max_sessions", 10)):
            value = getattr(self, name)
            _check(value >= low, name.upper(), value, f"a whole number, at least {low}")
        _check(self.min_photos <= self.max_photos, "MIN_PHOTOS", self.min_photos,
               f"a number no larger than TALEWEAVER_MAX_PHOTOS ({self.max_photos})")
        _check(bool(self.story_model.strip()), "STORY_MODEL", self.story_model,
               "a Hub model id or a local folder")
        _check(bool(self.upscaler.strip()), "UPSCALER", self.upscaler,
               "a Hub model id or a local folder of a Swin2SR model, or lanczos")
        _check(bool(self.local_user.strip()), "LOCAL_USER", self.local_user,
               "a non-empty user name")
        _check(bool(self.safety_model.strip()), "SAFETY_MODEL", self.safety_model,
               "a Hub model id or a local folder")
        _check(0 <= self.adapter_cache <= 64, "ADAPTER_CACHE", self.adapter_cache,
               "a whole number from 0 to 64")
        _check(0 <= self.cpu_threads <= 256, "CPU_THREADS", self.cpu_threads,
               "a whole number from 0 (chosen for the machine) to 256")
        _check(self.face_pass in SWITCHES, "FACE_PASS", self.face_pass, " or ".join(SWITCHES))
        _check(0 < self.face_pass_strength <= 1, "FACE_PASS_STRENGTH", self.face_pass_strength,
               "a number above 0 and at most 1")
        _check(0 <= self.face_pass_margin <= 2, "FACE_PASS_MARGIN", self.face_pass_margin,
               "a number from 0 to 2")
        _check(0 <= self.redraw_below <= 100, "REDRAW_BELOW", self.redraw_below,
               "a whole number from 0 to 100")
        _check(-1 <= self.redraw_tries <= 8, "REDRAW_TRIES", self.redraw_tries,
               "a whole number from 0 to 8, or -1 (0 on ZeroGPU, else 2)")
        _check(self.job_image == self.job_image.strip() and " " not in self.job_image,
               "JOB_IMAGE", self.job_image, 'an image name without spaces, e.g. '
               '"hf.co/spaces/you/taleweaver", or "" for this Space\'s own image')
        _check(bool(re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.job_flavor)), "JOB_FLAVOR",
               self.job_flavor, "a Jobs hardware name such as l4x1, a10g-large or a100-large")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build Settings from TALEWEAVER_* variables; an unknown or invalid one is an error."""
        environ = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls) }
        values: dict[str, object] = {}
        for key, raw in environ.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX):].lower()
            if name not in fields:
                known = ", ".join(PREFIX + n.upper() for n in fields)
                raise SettingsError(f"{key} is not a Taleweaver setting; known settings: {known}")
            values[name] = _parse(key, raw, fields[name].default)
        return cls(**values)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _parse(key: str, raw: str, default: object) -> object:
    raw = raw.strip()
    if isinstance(default, float):
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{key}={raw!r}: expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise SettingsError(f"{key}={raw!r}: expected a finite number")
        return value
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{key}={raw!r}: expected a whole number") from None
    if isinstance(default, Path):
        if not raw:
            raise SettingsError(f"{key} is empty: expected a folder path")
        return Path(raw).expanduser()
    return raw


def _check(ok: bool, name: str, value: object, accepts: str) -> None:
    if not ok:
        raise SettingsError(f"{PREFIX}{name}={value!r} is invalid: it accepts {accepts}")
