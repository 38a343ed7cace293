"""The project's whole training job side by side with diffusers' DreamBooth-LoRA SDXL scripts.

    python -m pipeline tiny-model /tmp/tiny-wide --channels 320 640
    python bench/train_vs_diffusers.py --model /tmp/tiny-wide \\
        --basic ~/diffusers/examples/dreambooth/train_dreambooth_lora_sdxl.py \\
        --advanced ~/diffusers/examples/advanced_diffusion_training/train_dreambooth_lora_sdxl_advanced.py

The diffusers scripts are not part of Taleweaver: fetch them yourself (a clone of
huggingface/diffusers whose examples fit the installed diffusers; they also need torchvision).
Every job trains the same random SDXL-architecture model on the same 8 synthetic photos, 256 px,
LoRA rank 4 on the UNet's attention, 40 steps of batch 1, AdamW at a constant 1e-4, min-SNR 5,
no prior preservation, float32 on the CPU with one thread (OMP_NUM_THREADS=1), each a fresh
process with a fresh output folder: our CLI (`python -m pipeline train`, nothing pushed), the
basic script, and the advanced one with --cache_latents. Runs are interleaved (one of each per
round, the order rotating), so that other load on the machine slows all alike. Prints the median
wall time of each job and of its 40 steps (tqdm's elapsed time, whole seconds), and the ratios.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "a photo of ohwx girl"
ELAPSED = re.compile(r"(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")  # tqdm: "40/40 [00:12<00:00"


def write_photos(folder: Path, count: int, size: int) -> list[Path]:
    """`count` deterministic photos (soft blobs on plain backgrounds), square, `size` px."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    paths = []
    for n in range(count):
        cx, cy, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.15, 0.3)]
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        pixels = blob * rng.uniform(0, 255, 3) + (1 - blob) * rng.uniform(0, 255, 3)
        path = folder / f"photo{n:02d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def make_character(data_dir: Path, photos: list[Path], size: int) -> None:
    """Mia, a girl with these photos as her training crops (as `add` would keep them)."""
    from PIL import Image

    from pipeline.characters import CharacterStore, Crop
    from pipeline.settings import Settings

    crops = []
    for path in photos:
        with Image.open(path) as image:
            crops.append((image.convert("RGB"), Crop("", (size, size), (0, 0, size, size),
                                                     path.name)))
    CharacterStore(Settings(data_dir=data_dir), "local").create("Mia", "girl", "", "ohwx", crops)


def ours(args, work: Path, seed_data: Path) -> tuple[list[str], dict]:
    data = work / "data"
    subprocess.run(["cp", "-r", str(seed_data), str(data)], check=True)
    env = {"TALEWEAVER_BASE_MODEL": str(args.model), "TALEWEAVER_VAE": "",
           "TALEWEAVER_DEVICE": "cpu", "TALEWEAVER_RESOLUTION": str(args.resolution),
           "TALEWEAVER_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "pipeline", "train", "Mia", "--steps", str(args.steps),
               "--rank", str(args.rank), "--no-prior-preservation", "--no-push",
               "--set", "warmup_steps=0", "--set", "snr_gamma=5", "--seed", "0",
               *args.ours_extra]
    return command, env


def diffusers_script(script: Path, args, work: Path, photos: Path, advanced: bool):
    command = [sys.executable, str(script), "--pretrained_model_name_or_path", str(args.model),
               "--instance_data_dir", str(photos), "--instance_prompt", PROMPT,
               "--output_dir", str(work / "out"), "--resolution", str(args.resolution),
               "--train_batch_size", "1", "--max_train_steps", str(args.steps),
               "--rank", str(args.rank), "--learning_rate", "1e-4", "--lr_scheduler", "constant",
               "--lr_warmup_steps", "0", "--snr_gamma", "5", "--seed", "0",
               "--mixed_precision", "no", "--random_flip", "--dataloader_num_workers", "0",
               "--report_to", "tensorboard", "--checkpointing_steps", "100000"]
    if advanced:
        command += ["--cache_latents", "--optimizer", "AdamW"]
    return command, {}


def run(command: list[str], extra_env: dict, steps: int) -> tuple[float, float]:
    """Wall seconds of the process, and seconds its `steps`-step progress bar ran."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALEWEAVER_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **extra_env)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    bars = [m for m in ELAPSED.finditer(done.stderr) if int(m.group(2)) == steps
            and int(m.group(1)) == steps]
    if not bars:
        raise RuntimeError(f"no {steps}-step progress bar in the output of {command[1]}")
    hours, minutes, seconds = (int(g or 0) for g in bars[-1].group(3, 4, 5))
    return wall, hours * 3600 + minutes * 60 + seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="an SDXL-architecture diffusers folder (e.g. tiny-model --channels 320 640)")
    parser.add_argument("--basic", type=Path, help="diffusers' examples/dreambooth/"
                        "train_dreambooth_lora_sdxl.py")
    parser.add_argument("--advanced", type=Path, help="diffusers' examples/"
                        "advanced_diffusion_training/train_dreambooth_lora_sdxl_advanced.py")
    parser.add_argument("--runs", type=int, default=3, help="rounds (one job of each per round)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--ours-extra", nargs=argparse.REMAINDER, default=[],
                        help="more arguments for our `train` command (last on the line), e.g. "
                             "--set validation=on")
    args = parser.parse_args()
    jobs = {"ours": None}
    if args.basic:
        jobs["basic"] = args.basic
    if args.advanced:
        jobs["advanced"] = args.advanced
    with tempfile.TemporaryDirectory(prefix="train-vs-diffusers-") as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos", args.photos, args.resolution)
        make_character(tmp / "seed-data", photos, args.resolution)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
        names = list(jobs)
        for round_ in range(args.runs):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{name}-"))
                if name == "ours":
                    command, env = ours(args, work, tmp / "seed-data")
                else:
                    command, env = diffusers_script(jobs[name], args, work, tmp / "photos",
                                                    advanced=name == "advanced")
                times[name].append(run(command, env, args.steps))
                wall, steps = times[name][-1]
                print(f"round {round_ + 1} {name:<8} whole job {wall:6.1f} s · "
                      f"{args.steps} steps {steps:4.0f} s", flush=True)
    medians = {name: (statistics.median(w for w, _ in values),
                      statistics.median(s for _, s in values)) for name, values in times.items()}
    print(f"\nmedian of {args.runs} rounds, {args.resolution} px, rank {args.rank}, "
          f"{args.steps} steps, one thread, {args.model}")
    for name, (wall, steps) in medians.items():
        print(f"  {name:<8} whole job {wall:6.1f} s   steps {steps:5.0f} s   "
              f"other {wall - steps:5.1f} s")
    for name in [n for n in medians if n != "ours"]:
        wall, steps = medians[name]
        print(f"  ours / {name}: whole job {medians['ours'][0] / wall:.2f}x, "
              f"steps {medians['ours'][1] / steps:.2f}x")


if __name__ == "__main__":
    main()
