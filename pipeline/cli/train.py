"""CLI commands for training: train (here, or on Hugging Face Jobs with --on hf-jobs), the
job's state and cancelling it (job-status, job-cancel), the Jobs hardware (job-flavors), what
runs inside a job (job-train), try-character (one quick picture), and tiny-model (the tiny
test model)."""
from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..progress import counted
from ..settings import Settings
from .core import Result, command, is_main_process, progress_bar


def _setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE for --set: the value as JSON (numbers, true/false, null), else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. snr_gamma=0")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _train(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import plan_training, train
    from .hub import hub_text

    options = dict(args.set or ())
    for field in ("steps", "rank", "learning_rate", "batch_size", "prior_preservation",
                  "train_text_encoder", "quantize", "seed"):
        if getattr(args, field) is not None:
            options[field] = getattr(args, field)
    if args.on == "hf-jobs":
        return _train_on_jobs(args, settings, options)
    plan = plan_training(settings, args.user, args.name, args.preset or "", options)
    if args.estimate:
        return Result(plan.to_json(), f"{plan.character}: {plan.estimate.describe()}")
    main_process = is_main_process()
    if main_process and not args.json:
        print(f"Training {plan.character} ({plan.config.preset} preset, "
              f"{counted(plan.config.steps, 'step')}): {plan.estimate.describe()}",
              file=sys.stderr)
    with progress_bar(f"training {plan.character}") as show:
        trained = train(settings, args.user, plan.character, args.preset or "", options,
                        token=own_token(), publish=args.push and main_process,
                        chunk_steps=args.chunk_steps,
                        max_chunks=1 if args.chunk_steps else None,
                        on_progress=show if main_process else None)
    result = trained.result
    loss = "" if result.loss is None else f", loss {result.loss:.4f}"
    if result.done:
        text = (f"{plan.character}'s adapter is ready after {counted(result.step, 'step')}"
                f"{loss}: {result.adapter_dir}")
    else:
        text = (f"{plan.character}: step {result.step} of {result.total}{loss}; "
                "run the same command again to go on")
    lines = [*(f"warning: {w}" for w in result.warnings), text]
    if trained.validation is not None:
        seen = f" ({result.validation_image})" if trained.validation.drawn else ""
        lines.append(f"{trained.validation.text}{seen}")
    if trained.hub is not None:
        lines.append(hub_text(trained.hub, f"push {shlex.quote(plan.character)}"))
    return Result(trained.to_json(), "\n".join(lines))


def _try_character(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import try_character

    tried = try_character(settings, args.user, args.name, args.scene,
                          adapter_weight=args.adapter_weight, style=args.style, seed=args.seed,
                          token=own_token())
    out = args.out or Path(f"try-{tried.seed}.png")
    tried.image.save(out)
    return Result({**tried.to_json(), "path": str(out)},
                  f"Saved {out}: {tried.scene} (strength {tried.adapter_weight:g}, "
                  f"{tried.width}x{tried.height}, {counted(tried.steps, 'step')}, seed "
                  f"{tried.seed})")
def _train_on_jobs(args: argparse.Namespace, settings: Settings, options: dict) -> Result:
    from ..actions.system import own_token
    from ..actions.training import plan_training, train_on_jobs

    token = own_token()
    with here_instead(args.name):
        if args.estimate:
            plan = plan_training(settings, args.user, args.name, args.preset or "", options,
                                 where="hf-jobs", flavor=args.flavor or "", token=token,
                                 checkpoint_steps=args.checkpoint_steps)
            return Result(plan.to_json(), f"{plan.character} on Hugging Face Jobs: "
                                          f"{plan.job.describe()}.\n{plan.photos}")
        record = train_on_jobs(settings, args.user, args.name, args.preset or "", options,
                               token=token, flavor=args.flavor or "",
                               checkpoint_steps=args.checkpoint_steps, follow=False)
    if is_main_process() and not args.json:
        print(f"{record.character} trains on Hugging Face Jobs, in your account: {record.url}\n"
              f"{record.plan}.\nThe photos' training copy is in your private bucket "
              f"{record.bucket} until the job ends.", file=sys.stderr)
    if args.detach:
        return _job_result(record, follow=False)
    return _follow(args, settings, record.character)


def _follow(args: argparse.Namespace, settings: Settings, name: str) -> Result:
    """Follow a character's job with a progress bar to its end (Ctrl-C leaves it running)."""
    from ..actions.system import own_token
    from ..actions.training import follow_job

    try:
        with progress_bar(f"training {name} on Hugging Face Jobs") as show:
            record = follow_job(settings, args.user, name, own_token(), on_progress=show)
    except KeyboardInterrupt:
        raise RuntimeError(f"stopped following; the job goes on. Follow it again with: python -m "
                           f"pipeline job-status {shlex.quote(name)} --follow, or cancel it with: "
                           f"python -m pipeline job-cancel {shlex.quote(name)}") from None
    return _job_result(record, follow=True)


def _job_result(record, follow: bool) -> Result:
    """A job's record for --json and its state for people; a job that ended without training
    the character is an error (exit status 1), with why."""
    if follow and record.state in ("failed", "timed_out", "cancelled", "vanished"):
        raise RuntimeError(record.message)
    cost = record.cost_usd()
    lines = [record.message]
    if record.url:
        lines.append(f"The job: {record.url}" + (f" (about ${cost:.2f} so far)" if cost else ""))
    if record.active and not follow:
        name = shlex.quote(record.character)
        lines.append(f"Follow it with: python -m pipeline job-status {name} --follow; cancel it "
                     f"with: python -m pipeline job-cancel {name}")
    return Result(record.to_json(), "\n".join(lines))


@contextlib.contextmanager
def here_instead(name: str):
    """Jobs can't be used (no token, no Jobs permission, no billing): say why, and how to train
    on this machine instead."""
    from ..actions.training import JobsUnavailable

    try:
        yield
    except JobsUnavailable as err:
        token = (" (HF_TOKEN: a token that may run Jobs, from https://huggingface.co/settings/"
                 "tokens)") if err.reason in ("no_token", "unauthorized", "forbidden") else ""
        raise ValueError(f"{err}{token}. To train on this machine instead, run: python -m "
                         f"pipeline train {shlex.quote(name)}") from None


def _job_status(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import job_status

    record = job_status(settings, args.user, args.name, own_token())
    if record is None:
        raise ValueError(f"{args.name} has never trained on Hugging Face Jobs; start with: "
                         f"python -m pipeline train {shlex.quote(args.name)} --on hf-jobs")
    if args.follow and record.active:
        return _follow(args, settings, record.character)
    return _job_result(record, follow=False)


def _job_cancel(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import cancel_job

    with here_instead(args.name):
        return _job_result(cancel_job(settings, args.user, args.name, own_token()), follow=False)


def _job_flavors(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import jobs_hardware

    with here_instead("NAME"):
        flavors = jobs_hardware(own_token())
    return Result([f.to_json() for f in flavors], "\n".join(f.describe() for f in flavors))


def _job_train(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import own_token
    from ..actions.training import job_train

    outcome = job_train(settings, args.bucket, own_token(), checkpoint_steps=args.checkpoint_steps,
                        emit=lambda line: print(line, flush=True))
    if not outcome:  # another process of accelerate launch
        return Result({}, "")
    return Result(outcome, f"{outcome['character']}'s adapter is in your private repo "
                           f"{outcome['repo_id']} after {counted(outcome['step'], 'step')}")


def _tiny_model(args: argparse.Namespace, settings: Settings) -> Result:
    from ..actions.system import make_tiny_model

    out, safety = make_tiny_model(args.out_dir, seed=args.seed, channels=tuple(args.channels))
    return Result({"path": str(out), "safety_model": str(safety)},
                  f"Tiny test model saved to {out}, with a tiny safety classifier that passes "
                  f"every picture. Try: TALEWEAVER_BASE_MODEL={out} TALEWEAVER_SAFETY_MODEL="
                  f"{safety} TALEWEAVER_RESOLUTION=128 python app.py")


def register(sub) -> None:
    parser = command(sub, "tiny-model", _tiny_model,
                     "build a tiny random SDXL-architecture pipeline (for tests and CPU demos)")
    parser.add_argument("out_dir", type=Path, help="folder to save it in")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    parser.add_argument("--channels", type=int, nargs=2, default=(32, 64), metavar=("C1", "C2"),
                        help="UNet block widths (default 32 64); wider makes a larger random "
                             "model for timing, e.g. 320 640")
    parser = command(sub, "try-character", _try_character,
                     "draw one quick picture of a trained character in a scene, with its "
                     "adapter alone")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--scene", default="",
                        help="what it does, e.g. 'on a swing' (the name is added in front)")
    parser.add_argument("--adapter-weight", type=float, default=1.0,
                        help="the adapter's strength, above 0 to 2 (default 1.0)")
    parser.add_argument("--style", default="watercolor", help="art style (default watercolor)")
    parser.add_argument("--seed", type=int, default=None, help="the picture's seed (default: "
                        "a new one, printed)")
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG file to write (default: try-SEED.png here)")
    parser = command(sub, "train", _train, "train (or go on training) a character's LoRA adapter "
                     "on the base model; run it again to continue an unfinished run")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--preset", choices=("person", "pet", "object"), default=None,
                        help="what the character is (default: from its kind, e.g. dog -> pet)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps in all (default: the preset's, scaled by photos)")
    parser.add_argument("--chunk-steps", type=int, default=None, metavar="K",
                        help="train at most K steps, save a checkpoint and stop")
    parser.add_argument("--rank", type=int, default=None, help="LoRA rank")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--prior-preservation", action=argparse.BooleanOptionalAction,
                        default=None, help="also learn base-model images of the kind")
    parser.add_argument("--train-text-encoder", action=argparse.BooleanOptionalAction,
                        default=None, help="LoRA on the text encoders too")
    parser.add_argument("--quantize", choices=("none", "8bit", "4bit"), default=None,
                        help="store the frozen base UNet in 8 or 4 bits (CUDA only)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--set", type=_setting, action="append", metavar="KEY=VALUE",
                        help="any other training setting, e.g. --set snr_gamma=0 (repeatable)")
    parser.add_argument("--estimate", action="store_true",
                        help="only print the GPU-time estimate and the settings")
    parser.add_argument("--push", action=argparse.BooleanOptionalAction, default=True,
                        help="when done, upload the adapter to your private Hub repo with the "
                             "token in HF_TOKEN (default; skipped without a token)")
    parser.add_argument("--on", choices=("here", "hf-jobs"), default="here",
                        help="where to train: here (this machine, the default) or hf-jobs (a "
                             "Hugging Face Job in your account, billed to it; needs HF_TOKEN)")
    parser.add_argument("--flavor", default=None,
                        help="Jobs hardware, e.g. l4x1 or a100-large (default: "
                             "TALEWEAVER_JOB_FLAVOR; see job-flavors)")
    parser.add_argument("--checkpoint-steps", type=int, default=None, metavar="K",
                        help="on Jobs: save a checkpoint to the private bucket every K steps "
                             "(default: about every 5 minutes)")
    parser.add_argument("--detach", action="store_true",
                        help="on Jobs: start the job and return (follow it with job-status)")
    parser = command(sub, "job-status", _job_status, "the state of a character's training job "
                     "on Hugging Face Jobs (an ended job brings its adapter here)")
    parser.add_argument("name", help="the character's name")
    parser.add_argument("--follow", action="store_true",
                        help="follow a running job with a progress bar until it ends")
    parser = command(sub, "job-cancel", _job_cancel,
                     "cancel a character's training job on Hugging Face Jobs")
    parser.add_argument("name", help="the character's name")
    command(sub, "job-flavors", _job_flavors,
            "the GPU hardware of Hugging Face Jobs, with prices (needs HF_TOKEN)")
    parser = command(sub, "job-train", _job_train, "what a Hugging Face Job runs: train the "
                     "character waiting in a private bucket, push its adapter, delete the photos")
    parser.add_argument("bucket", help="the private bucket, e.g. alice/taleweaver-mia-training")
    parser.add_argument("--checkpoint-steps", type=int, required=True, metavar="K",
                        help="save a checkpoint to the bucket every K steps")
