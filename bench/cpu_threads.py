"""What torch's CPU threading costs: a training step and a picture, each way of threading in a
process of its own.

    python bench/cpu_threads.py                          # the tiny model at 128 px
    python bench/cpu_threads.py --model /tmp/tiny-wide --resolution 256 --ways 1 2 2:passive

A way is a thread count, and ":passive" for OMP_WAIT_POLICY=PASSIVE (idle threads sleep instead
of spinning for the next parallel region). By default: one thread; torch's default (a thread
per core, spinning); and what Taleweaver chooses (hardware.use_cpu_threads). Each way runs in a
fresh process, set up as `python -m pipeline` and `python app.py` set it up, and the rounds are
interleaved, so that the machine's other load weighs on all alike. Prints the median step and
picture time of each way against one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
from bench.train_speed import synthetic_crops
from pipeline.hardware import detect
from pipeline.models import load_pipeline
from pipeline.settings import Settings
from pipeline.training.config import TrainConfig
from pipeline.training.run import make_accelerator, open_run

settings = Settings(base_model={model!r}, vae="", device="cpu", resolution={resolution},
                    data_dir={data!r})
hardware = detect(settings)
pipe = load_pipeline(settings, hardware)
config = TrainConfig(rank=4, steps=10_000, warmup_steps=0, prior_preservation=False)
steps, images = [], []
with open_run(pipe, make_accelerator(hardware), hardware, config,
              synthetic_crops(4, {resolution}), [], ["a photo of ohwx person"], {resolution}) as run:
    for step in range({repeats} + 1):
        tick = time.perf_counter()
        run.step(step).item()
        steps.append(time.perf_counter() - tick)
for _ in range({repeats} + 1):
    tick = time.perf_counter()
    pipe("a photo of a dog", num_inference_steps={image_steps}, height={resolution},
         width={resolution}, generator=torch.Generator().manual_seed(0))
    images.append(time.perf_counter() - tick)
print(json.dumps({{"threads": torch.get_num_threads(), "step": statistics.median(steps[1:]),
                  "image": statistics.median(images[1:])}}))
"""


def environment(way: str) -> dict:
    """The environment of a process threaded this way ("chosen": as Taleweaver sets it up)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    if way == "chosen":
        from pipeline.hardware import use_cpu_threads
        from pipeline.settings import Settings

        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        use_cpu_threads(Settings(device="cpu"))
        chosen = dict(os.environ)
        os.environ.clear()
        os.environ.update(saved)
        return chosen
    if way != "default":
        threads, _, wait = way.partition(":")
        env["OMP_NUM_THREADS"] = threads
        if wait:
            env["OMP_WAIT_POLICY"] = wait.upper()
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an SDXL-architecture diffusers folder "
                        "(default: the tiny test model, built in a temporary folder)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--ways", nargs="+", default=["1", "default", "chosen"],
                        help='"N" or "N:passive" threads, "default" (torch\'s own) or "chosen"')
    parser.add_argument("--rounds", type=int, default=3, help="processes of each way")
    parser.add_argument("--repeats", type=int, default=6, help="steps and pictures a process")
    parser.add_argument("--image-steps", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {way: [] for way in args.ways}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from pipeline.testing import save_tiny_model

            model = save_tiny_model(Path(tmp) / "tiny")
        code = CHILD.format(root=str(ROOT), model=str(model), resolution=args.resolution,
                            data=str(Path(tmp) / "data"), repeats=args.repeats,
                            image_steps=args.image_steps)
        for round_ in range(args.rounds):
            ways = args.ways[round_ % len(args.ways):] + args.ways[:round_ % len(args.ways)]
            for way in ways:
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", code], env=environment(way),
                                      capture_output=True, text=True, cwd=ROOT)
                if done.returncode:
                    raise RuntimeError(f"way {way} failed:\n{done.stderr[-2000:]}")
                results[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {round_ + 1} {way:<10} {results[way][-1]} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\n{args.model or 'tiny test model'} · {args.resolution} px · {os.cpu_count()} CPUs · "
          f"median of {args.rounds} processes x {args.repeats}")
    base = args.ways[0]
    base_step = statistics.median(r["step"] for r in results[base])
    base_image = statistics.median(r["image"] for r in results[base])
    for way, runs in results.items():
        step = statistics.median(r["step"] for r in runs)
        image = statistics.median(r["image"] for r in runs)
        print(f"  {way:<10} ({runs[0]['threads']} threads) training step {step * 1000:8.1f} ms "
              f"({step / base_step:5.2f}x) · {args.image_steps}-step picture "
              f"{image * 1000:8.1f} ms ({image / base_image:5.2f}x)")


if __name__ == "__main__":
    main()
