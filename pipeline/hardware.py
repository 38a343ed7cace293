"""Where GPU work runs (ZeroGPU, a dedicated CUDA GPU, or the CPU) and with which dtype.

`gpu(duration=...)` marks the functions that need the accelerator: on a ZeroGPU Space it is
`spaces.GPU`, which runs the call in a forked worker holding a GPU for at most `duration`
seconds; everywhere else it returns the function unchanged. This is the only module that
imports `spaces`, and only when asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar, Union

from .settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])
Duration = Union[int, float, Callable[..., float]]

# The longest slice asked of ZeroGPU in one call: long enough for a useful chunk of training,
# short enough to be scheduled quickly. ZeroGPU refuses a call whose requested duration exceeds
# the day's remaining quota, and `spaces` scales that request by its card's duration_factor
# (1.5 on the RTX PRO 6000, spaces/zero/configs.json): 100 s calls (150 s asked) fit a free
# account's 5 minutes twice, where 120 s calls (180 s asked) would fit only once.
ZEROGPU_CALL_SECONDS = 100


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
    """True on a ZeroGPU Space, as the `spaces` package itself decides (SPACES_ZERO_GPU)."""
    try:
        from spaces.config import Config
    except ImportError:
        return False
    return bool(Config.zero_gpu)


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
