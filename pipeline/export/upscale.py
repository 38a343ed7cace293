"""Pictures enlarged for print: a super-resolution model on a GPU, a plain resize elsewhere.

SDXL draws about 1024 px; a picture printed 7 in wide needs 2100 px for 300 dpi. With a GPU the
picture is enlarged by a Swin2SR model (transformers' Swin2SRForImageSuperResolution, loaded by
Hub id or folder from TALEWEAVER_UPSCALER; by default caidas/swin2SR-classical-sr-x4-64, made
for clean pictures), in overlapping tiles so any size fits in memory, then brought to the exact
size with a Lanczos filter. On the CPU (where the model would take minutes a picture), with
TALEWEAVER_UPSCALER=lanczos, or when the model can't be loaded, a Lanczos resize does it all.
Every upscaler has a `name`, which the PDF's metadata records.
"""
from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Optional, Protocol

from PIL import Image

from ..hardware import Hardware, ZEROGPU_CALL_SECONDS, detect, gpu
from ..models import ModelUnavailableError, _from_pretrained
from ..settings import Settings

log = logging.getLogger(__name__)
RESIZE = "lanczos"  # TALEWEAVER_UPSCALER's value for "never a model"
TILE = 256  # input pixels per side of one tile the model sees
OVERLAP = 16  # input pixels of context around a tile, cut off its output (no seams)

_models: dict[tuple[str, str, str], object] = {}
_models_lock = threading.Lock()


class Upscaler(Protocol):
    """Enlarges a picture to an exact size; `name` says how (for the PDF's metadata)."""

    name: str

    def __call__(self, image: Image.Image, size: tuple[int, int]) -> Image.Image: ...


class Resize:
    """A high-quality plain resize (Lanczos, Pillow)."""

    def __init__(self, why: str = ""):
        self.name = "Lanczos resize (Pillow)" + (f": {why}" if why else "")

    def __call__(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        return lanczos(image, size)


class SuperResolution:
    """A Swin2SR super-resolution model, then a Lanczos resize to the exact size. The model
    loads at the first picture that needs enlarging; if it can't, a plain resize is used and
    `name` says so."""

    def __init__(self, settings: Settings, hardware: Optional[Hardware] = None):
        self.settings = settings
        self.hardware = hardware or detect(settings)
        source = settings.upscaler  # a local folder by its name only: no server path shown
        source = Path(source).name if Path(source).expanduser().is_dir() else source
        self.name = f"{source} (Swin2SR super-resolution, transformers)"
        self._fallback: Optional[Resize] = None

    def __call__(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        if self._fallback is None and (size[0] > image.width or size[1] > image.height):
            try:
                image = super_resolve(self.settings, self.hardware, image.convert("RGB"))
            except ModelUnavailableError as err:
                log.warning("pictures will be resized without the model: %s", err)
                self._fallback = Resize("the super-resolution model could not be loaded")
                self.name = self._fallback.name
        return lanczos(image, size)


def choose_upscaler(settings: Settings) -> Upscaler:
    """The model where there is a GPU (and TALEWEAVER_UPSCALER names one), else a resize."""
    if settings.upscaler == RESIZE:
        return Resize()
    hardware = detect(settings)
    if not hardware.has_gpu:
        return Resize("no GPU here for the super-resolution model")
    return SuperResolution(settings, hardware)


def lanczos(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The picture at exactly `size`, resampled with Lanczos (RGB)."""
    image = image.convert("RGB")
    return image if image.size == tuple(size) else image.resize(size, Image.Resampling.LANCZOS)


def upscale_seconds(settings: Settings, hardware: Hardware, image: Image.Image) -> float:
    """The GPU seconds a `super_resolve` call asks ZeroGPU for: loading the model (it is
    loaded in each call's worker there) and a generous bound per megapixel (not measured)."""
    return min(float(ZEROGPU_CALL_SECONDS), 15 + 10 * image.width * image.height / 2**20)


@gpu(duration=upscale_seconds)
def super_resolve(settings: Settings, hardware: Hardware, image: Image.Image) -> Image.Image:
    """The picture enlarged by the model's factor (one ZeroGPU call per picture)."""
    import numpy as np
    import torch

    model = load_model(settings, hardware)
    scale, window = model.config.upscale, model.config.window_size
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())
    pixels = pixels.permute(2, 0, 1)[None]
    height, width = pixels.shape[-2:]
    out = torch.empty((3, height * scale, width * scale), dtype=torch.uint8)
    with torch.inference_mode():
        for top in range(0, height, TILE):
            for left in range(0, width, TILE):
                bottom, right = min(top + TILE, height), min(left + TILE, width)
                y0, x0 = max(top - OVERLAP, 0), max(left - OVERLAP, 0)
                y1, x1 = min(bottom + OVERLAP, height), min(right + OVERLAP, width)
                tile = pixels[..., y0:y1, x0:x1].to(hardware.device, hardware.torch_dtype) / 255
                enlarged = model(pixel_values=_padded(tile, window)).reconstruction[0]
                enlarged = enlarged[:, (top - y0) * scale:(bottom - y0) * scale,
                                    (left - x0) * scale:(right - x0) * scale]
                out[:, top * scale:bottom * scale, left * scale:right * scale] = \
                    (enlarged.float().clamp(0, 1) * 255).round().to("cpu", torch.uint8)
    return Image.fromarray(out.permute(1, 2, 0).numpy())


def _padded(tile, multiple: int):
    """The tile padded (edge pixels repeated) to a multiple of the model's window on each side:
    Swin2SR pads by itself but then unfolds at the unpadded size (transformers 5.23)."""
    import torch.nn.functional as F

    height, width = tile.shape[-2:]
    return F.pad(tile, (0, -width % multiple, 0, -height % multiple), mode="replicate")


def load_model(settings: Settings, hardware: Hardware):
    """The Swin2SR model of TALEWEAVER_UPSCALER on the hardware's device, once per process."""
    from transformers import Swin2SRForImageSuperResolution

    key = (settings.upscaler, hardware.device, hardware.dtype)
    with _models_lock:
        if key not in _models:
            model = _from_pretrained(Swin2SRForImageSuperResolution, settings.upscaler,
                                     "TALEWEAVER_UPSCALER", hardware.torch_dtype)
            _models[key] = model.to(hardware.device).eval()
        return _models[key]


def print_size(width_pt: float, height_pt: float, dpi: int) -> tuple[int, int]:
    """Pixels for a picture printed at this size (in points) and resolution."""
    return math.ceil(width_pt / 72 * dpi - 1e-6), math.ceil(height_pt / 72 * dpi - 1e-6)
