"""Training speed: seconds per LoRA step, where they go, and how close a step is to the bare UNet.

    python -m pipeline tiny-model /tmp/tiny-wide --channels 320 640
    python bench/train_speed.py /tmp/tiny-wide --resolution 256 --rank 16 --steps 30 --batch 1
    python bench/train_speed.py /path/to/sdxl-base --resolution 1024 --quantize 8bit   # CUDA

Any SDXL-architecture diffusers folder works. Prints the median seconds per step after warm-up,
peak memory (process RSS, and the CUDA peak where there is a GPU), the median time of each part
of a step (data, forward, backward, optimizer; each part is timed with a device sync around it),
and the ratio of a real training step to a bare UNet forward + backward with the same LoRA layers
at the same resolution and batch, on fixed random inputs (the target is at most 1.1: a step
should add nothing but the UNet's own work).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.characters import Crop  # noqa: E402
from pipeline.hardware import detect  # noqa: E402
from pipeline.models import load_pipeline, load_quantized_pipeline  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.training.config import TrainConfig  # noqa: E402
from pipeline.training.run import (make_accelerator, open_run,  # noqa: E402
                                   uses_gradient_checkpointing)


def synthetic_crops(count: int, size: int):
    rng = np.random.default_rng(0)
    return [(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
             Crop(file="", original_size=(size * 2, size * 2), crop_box=(0, 0, size, size)))
            for _ in range(count)]


def timed(sync, fn, *args):
    sync()
    start = time.perf_counter()
    value = fn(*args)
    sync()
    return value, time.perf_counter() - start


def bare_unet_step(run, batch_size: int, resolution: int):
    """A closure doing one UNet forward + backward on fixed random inputs, nothing else."""
    import torch

    unet, data = run.pipe.unet, run.data
    device = data.latents.device
    latent = resolution // run.pipe.vae_scale_factor
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(batch_size, 4, latent, latent, generator=generator).to(device)
    timesteps = torch.randint(1000, (batch_size,), generator=generator).to(device)
    embeds = data.prompt_embeds[:1].expand(batch_size, -1, -1)
    pooled = data.pooled_embeds[:1].expand(batch_size, -1)
    time_ids = data.time_ids[:1].expand(batch_size, -1)

    def step():
        with run.accelerator.autocast():
            prediction = unet(noisy, timesteps, encoder_hidden_states=embeds,
                              added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids},
                              return_dict=False)[0]
        prediction.float().pow(2).mean().backward()
        for param in run.params:
            param.grad = None

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path, help="an SDXL-architecture diffusers folder")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--quantize", choices=("none", "8bit", "4bit"), default="none")
    parser.add_argument("--gradient-checkpointing", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--optimizer", choices=("auto", "adamw", "adamw8bit"), default="auto")
    args = parser.parse_args()

    import torch

    settings = Settings(base_model=str(args.model_dir), vae="", device=args.device,
                        resolution=args.resolution, data_dir=Path(tempfile.mkdtemp()))
    hardware = detect(settings)
    if args.quantize != "none" and not hardware.has_gpu:
        parser.error("--quantize needs a CUDA GPU: bitsandbytes can't quantize on the CPU")
    config = TrainConfig(rank=args.rank, batch_size=args.batch, steps=2 * args.steps + args.warmup,
                         warmup_steps=0, prior_preservation=False, quantize=args.quantize,
                         gradient_checkpointing=args.gradient_checkpointing,
                         optimizer=args.optimizer)
    cuda = hardware.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if config.quantize == "none":
        pipe = load_pipeline(settings, hardware)
    else:
        pipe = load_quantized_pipeline(settings, hardware, bits=8 if config.quantize == "8bit" else 4)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    accelerator = make_accelerator(hardware)
    crops = synthetic_crops(4, args.resolution)
    with open_run(pipe, accelerator, hardware, config, crops, [], ["a photo of ohwx person"],
                  args.resolution) as run:
        bare = bare_unet_step(run, args.batch, args.resolution)
        for step in range(args.warmup):
            run.step(step).item()
            bare()
        # Interleaved, so that other load on the machine slows both alike.
        whole, bare_times = [], []
        parts = {"data": [], "forward": [], "backward": [], "optimizer": []}
        for step in range(args.warmup, args.warmup + args.steps):
            whole.append(timed(sync, lambda s=step: run.step(s).item())[1])
            bare_times.append(timed(sync, bare)[1])
        for step in range(args.warmup + args.steps, args.warmup + 2 * args.steps):
            batch, seconds = timed(sync, run.batch, step)
            parts["data"].append(seconds)
            loss, seconds = timed(sync, run.loss, batch)
            parts["forward"].append(seconds)
            parts["backward"].append(timed(sync, run.backward, loss)[1])
            parts["optimizer"].append(timed(sync, run.update)[1])
        unet_bytes = pipe.unet.get_memory_footprint()
        trained = sum(p.numel() for p in run.params)
        checkpointing = uses_gradient_checkpointing(config, hardware)
        optimizer = type(run.optimizer.optimizer).__name__

    step_s, bare_s = statistics.median(whole), statistics.median(bare_times)
    print(f"model {args.model_dir} · {hardware.name} ({hardware.device}, {hardware.dtype}) · "
          f"torch threads {torch.get_num_threads()}")
    print(f"resolution {args.resolution} · batch {args.batch} · rank {args.rank} "
          f"({trained / 1e6:.2f} M LoRA parameters) · optimizer {optimizer} · "
          f"gradient checkpointing {'on' if checkpointing else 'off'} · quantize {args.quantize}")
    print(f"median step: {step_s * 1000:.1f} ms ({args.steps} steps after {args.warmup} warm-up)")
    for name, values in parts.items():
        print(f"  {name:<9} {statistics.median(values) * 1000:8.1f} ms")
    print(f"bare UNet forward+backward: {bare_s * 1000:.1f} ms · ratio step / bare: "
          f"{step_s / bare_s:.3f} (target <= 1.1)")
    print(f"UNet weights: {unet_bytes / 2 ** 20:.0f} MiB · peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", end="")
    if cuda:
        print(f" · CUDA peak: {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB", end="")
    print()


if __name__ == "__main__":
    main()
