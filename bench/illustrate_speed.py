"""Illustration speed: seconds per page, and what switching adapters per page costs.

    python bench/illustrate_speed.py MODEL_DIR [--pages 8] [--size 1024x1024] [--steps 30]

MODEL_DIR is any SDXL diffusers folder (the real base model on a GPU machine, or the tiny test
model from `python -m pipeline tiny-model DIR` on a CPU). The script gives two characters
random rank-16 LoRA adapters on the UNet's attention projections (what training makes),
illustrates a book whose pages cycle through A, B, A and B, and nobody, and prints:

- seconds per page, end to end (prompt encoding, denoising, decoding, saving the page,
  likeness scoring in its thread), with the second pass off and on;
- the second pass's share of a page's time, on pages with one character and with two
  (each head redrawn at the adapter's resolution: TALEWEAVER_RESOLUTION, --resolution);
- switching adapters per page (`adapters.activate`: set_adapters or disable_lora), in
  milliseconds and as a fraction of the page's time;
- what loading and removing an adapter on every page would cost instead (the adapter cache
  keeps them loaded between calls).
"""
from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline import models  # noqa: E402
from pipeline.actions.books import new_book  # noqa: E402
from pipeline.adapters import AdapterRef, activate, adapters_held  # noqa: E402
from pipeline.characters import CharacterStore, Crop  # noqa: E402
from pipeline.illustrate import IllustrateConfig, illustrate_book  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.testing import is_test_model, save_tiny_safety_model  # noqa: E402

USER = "bench"
PATTERN = ("Ava and the kite.", "Bo by the pond.", "Ava and Bo at the fair.", "An empty road.")
ONE, TWO = "Ava and the kite.", "Ava and Bo at the fair."
SWITCHES = 200  # activate() calls timed


def write_adapter(pipe, folder: Path, seed: int, rank: int = 16) -> None:
    """A random LoRA adapter for the pipeline's UNet, saved like training saves one."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = copy.deepcopy(pipe.unet).to("cpu", torch.float32)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in unet.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.01)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(
        folder, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--size", default="", help="WIDTHxHEIGHT (default: the style's)")
    parser.add_argument("--steps", type=int, default=None, help="default: the style's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resolution", type=int, default=1024,
                        help="side the second pass redraws a head at (the adapters' training "
                             "resolution; 64 with the tiny model)")
    args = parser.parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # "no LoRA keys for the text encoders" on every load
    width, _, height = args.size.partition("x")

    data = Path(tempfile.mkdtemp(prefix="taleweaver-bench-"))
    safety = (str(save_tiny_safety_model(data / "safety")) if is_test_model(str(args.model_dir))
              else Settings.from_env().safety_model)  # the tiny model draws noise
    settings = Settings(base_model=str(args.model_dir), vae="", data_dir=data,
                        device=args.device, resolution=args.resolution, safety_model=safety)
    pipe = models.load_pipeline(settings)
    store = CharacterStore(settings, USER)
    crop = (Image.new("RGB", (64, 64)), Crop("", (64, 64), (0, 0, 64, 64), "synthetic.png"))
    refs = []
    for seed, name in enumerate(("Ava", "Bo"), start=1):
        character = store.create(name, "child", "", f"tvbench{seed}", [crop])
        write_adapter(pipe, store.adapter_dir(character), seed)
        refs.append(AdapterRef(f"bench_{seed}", str(store.adapter_dir(character)), 1.0))
    config = IllustrateConfig(width=int(width) if width else None,
                              height=int(height) if height else None, steps=args.steps,
                              face_pass=False, redraw_tries=0)
    with_pass = IllustrateConfig(**{**config.__dict__, "face_pass": True})

    warm = new_book(settings, USER, "warm-up", "\n\n".join(PATTERN[:3]), seed=0)
    illustrate_book(settings, USER, warm.id, with_pass)
    story = "\n\n".join(PATTERN[n % len(PATTERN)] for n in range(args.pages))
    per_page = _seconds_per_page(settings, story, args.pages, config)
    shares = {}
    for label, line in (("one character", ONE), ("two characters", TWO)):
        off = _seconds_per_page(settings, "\n\n".join([line] * args.pages), args.pages, config)
        on = _seconds_per_page(settings, "\n\n".join([line] * args.pages), args.pages,
                               with_pass)
        shares[label] = (off, on)

    pages = [refs[:1], refs[1:], refs, []]
    with adapters_held(pipe, refs, keep=0):
        started = time.perf_counter()
        for n in range(SWITCHES):
            activate(pipe, pages[n % len(pages)])
        switch = (time.perf_counter() - started) / SWITCHES
    started = time.perf_counter()
    for n in range(4):
        with adapters_held(pipe, refs[n % 2:n % 2 + 1], keep=0):
            pass
    reload = (time.perf_counter() - started) / 4

    style = warm.style
    size = f"{config.width}x{config.height}" if config.width else "the style's size"
    print(f"model {args.model_dir} on {pipe.device} ({pipe.unet.dtype}), style {style}, "
          f"{size}, {config.steps or 'style'} steps, {args.pages} pages")
    print(f"seconds per page            {per_page:8.3f}  (second pass off, mixed pages)")
    for label, (off, on) in shares.items():
        print(f"{label:15} off {off:8.3f} s, on {on:8.3f} s a page: the second pass is "
              f"{(on - off) / on:.0%} of a page")
    print(f"adapter switch per page     {switch * 1000:8.2f} ms  "
          f"({switch / per_page:.2%} of a page)")
    print(f"reloading one adapter/page  {reload * 1000:8.2f} ms  "
          f"({reload / per_page:.2%} of a page; avoided by the adapter cache)")
    print(f"LoRA layers per adapter     {_lora_layers(pipe, refs):8d}")
    shutil.rmtree(data)


def _lora_layers(pipe, refs) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer

    with adapters_held(pipe, refs[:1], keep=0):
        return sum(isinstance(m, BaseTunerLayer) for m in pipe.unet.modules())


def _seconds_per_page(settings, story: str, pages: int, config) -> float:
    book = new_book(settings, USER, "bench", story, seed=1)
    started = time.perf_counter()
    illustrate_book(settings, USER, book.id, config)
    return (time.perf_counter() - started) / pages


if __name__ == "__main__":
    main()
