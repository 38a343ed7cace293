"""Where GPU work runs (ZeroGPU, a dedicated CUDA GPU, or the CPU) and with which dtype.

`gpu(duration=...)` marks the functions that need the accelerator: on a ZeroGPU Space it is
`spaces.GPU`, which runs the call in a forked worker holding a GPU for at most `duration`
seconds; everywhere else it returns the function unchanged. This is the only module that
imports `spaces`, and only when asked.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from .settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])
Duration = Union[int, float, Callable[..., float]]

# The longest slice asked of ZeroGPU in one call: long enough for a useful chunk of training,
# short enough to be scheduled quickly. ZeroGPU refuses a call whose requested duration exceeds
# the day's remaining quota, and `spaces` scales that request by its card's duration_factor
# (1.5 on the RTX PRO 6000, spaces/zero/configs.json): 100 s calls (150 s asked) fit a free
# account's 5 minutes twice, where 120 s calls (180 s asked) would fit only once.
ZEROGPU_CALL_SECONDS = 100
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # "<quota> <period>" or "max <period>"


# Without a GPU, pictures (pages, class images) are drawn smaller and in fewer steps unless
# asked otherwise: on 2 CPU cores the tiny demo model draws a page at the styles' 1152x896 in
# 30 steps in 95 to 150 s, and at 512x400 in 12 steps in a few seconds; SDXL itself takes
# minutes a picture even so (the banner says so).
CPU_PICTURE_SIDE = 512  # px, the long side; the style's shape is kept
CPU_PICTURE_STEPS = 12


def cpu_size(width: int, height: int) -> tuple[int, int]:
    """A picture size for the CPU: (width, height) scaled so its long side is at most
    CPU_PICTURE_SIDE, in multiples of 8 (what SDXL's VAE needs), at least 64."""
    scale = min(1.0, CPU_PICTURE_SIDE / max(width, height))
    return tuple(max(64, round(side * scale / 8) * 8) for side in (width, height))  # type: ignore


@dataclass(frozen=True)
class Hardware:
    """The place GPU work runs: kind is "zerogpu", "cuda" or "cpu"; dtype is a torch name."""

    kind: str
    device: str
    dtype: str
    name: str

    @property
    def has_gpu(self) -> bool:
        return self.kind != "cpu"

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space, as the `spaces` package itself decides (SPACES_ZERO_GPU).
    Without that variable it is not one, and `spaces` (a second or so to import) isn't asked."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return False
    try:
        from spaces.config import Config
    except ImportError:
        return False
    return bool(Config.zero_gpu)


def prepare_zerogpu() -> None:
    """On ZeroGPU, import `spaces` now: it patches torch so that models "moved to cuda" in the
    main process wait for a GPU call; it must come before any model is loaded."""
    if on_zerogpu():
        import spaces  # noqa: F401


def detect(settings: Settings) -> Hardware:
    """Choose device and dtype: bf16 where the GPU supports it, else fp16; fp32 on the CPU.

    TALEWEAVER_DEVICE and TALEWEAVER_DTYPE override the choice; asking for CUDA on a machine
    without it is an error rather than a silent fall back to a CPU that would take hours.
    """
    import torch

    if settings.device == "cpu":
        kind, device, name = "cpu", "cpu", "CPU"
    elif on_zerogpu():
        # ZeroGPU emulates CUDA outside @spaces.GPU calls, so ask the real device nothing here.
        kind, device, name = "zerogpu", "cuda", "ZeroGPU"
    elif torch.cuda.is_available():
        device = "cuda" if settings.device == "auto" else settings.device
        kind, name = "cuda", torch.cuda.get_device_name(torch.device(device))
    elif settings.device != "auto":
        raise SettingsError(
            f"TALEWEAVER_DEVICE={settings.device!r} but no CUDA GPU is visible to torch "
            f"(torch {torch.__version__}); set TALEWEAVER_DEVICE=auto or cpu"
        )
    else:
        kind, device, name = "cpu", "cpu", "CPU"
    return Hardware(kind=kind, device=device, dtype=_dtype(settings, kind, device), name=name)


def _dtype(settings: Settings, kind: str, device: str) -> str:
    if settings.dtype != "auto":
        return settings.dtype
    if kind == "cpu":
        return "float32"
    if kind == "zerogpu":
        return "bfloat16"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def usable_cpus() -> int:
    """The CPUs this process may really use: those it may run on, bounded by a container's CPU
    quota (cgroup v2 cpu.max), which torch's own count of cores ignores."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return max(1, count or 1)
    if quota != "max":
        count = min(count or 1, math.ceil(int(quota) / int(period)))
    return max(1, count or 1)


def cpu_threads(settings: Settings) -> int:
    """The thread count torch's CPU work gets here: TALEWEAVER_CPU_THREADS when set, else one
    per CPU this process may use (torch's own default counts cores a container may not use)."""
    return settings.cpu_threads or usable_cpus()


def use_cpu_threads(settings: Settings) -> Optional[int]:
    """Set up torch's CPU threads for a whole process (the app, the CLI; call it first thing):
    cpu_threads() of them, and idle threads sleep (OMP_WAIT_POLICY=PASSIVE) rather than spin.

    Spinning is OpenMP's default when there are no more threads than cores, and on cores that
    other processes keep busy it made torch's default 5 to 50 times slower than one thread here
    (bench/cpu_threads.py, a shared 2-core machine); sleeping threads cost next to nothing
    when the cores are free. Both go through the environment before torch is imported (so
    nothing imports it just for this); once it is, only the count can change. What whoever
    started the process set (OMP_NUM_THREADS, OMP_WAIT_POLICY) wins, unless
    TALEWEAVER_CPU_THREADS is set. Returns the count set, or None."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if os.environ.get("OMP_NUM_THREADS") and not settings.cpu_threads:
        return None
    threads = cpu_threads(settings)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def gpu(duration: Duration = 60) -> Callable[[F], F]:
    """Decorate a function that needs the GPU: `spaces.GPU(duration=...)` on ZeroGPU, else a no-op.

    `duration` is seconds, or a callable taking the function's own arguments that returns the
    estimated seconds for that call (ZeroGPU schedules shorter calls sooner).
    """
    if not (callable(duration) or (isinstance(duration, (int, float)) and duration > 0)):
        raise ValueError(f"gpu(duration=...) takes positive seconds or a callable, not {duration!r}")

    def decorate(fn: F) -> F:
        if not on_zerogpu():
            return fn
        import spaces

        return spaces.GPU(duration=duration)(fn)

    return decorate


def estimated_duration(duration: Duration, *args: Any, **kwargs: Any) -> float:
    """The seconds a `gpu(duration=...)` call with these arguments asks for."""
    return float(duration(*args, **kwargs) if callable(duration) else duration)
