"""The characters' LoRA adapters in the shared pipeline: kept loaded between calls (least
recently used out first, at most TALEWEAVER_ADAPTER_CACHE of them), and exactly the ones a
picture needs switched on.

A redraw, or the next book with the same characters, loads nothing; each call activates only
the adapters it names (its own user's: adapter names carry a hash of the owner's folder), so a
cached adapter of another user is never active on someone else's picture, and while nobody
holds one, LoRA is switched off (the base model's pictures, exactly). An adapter in use by a
running call is pinned and never evicted. Adapters loaded by other code are left alone.
Everything here holds `models.pipeline_lock()`.
"""
from __future__ import annotations

import contextlib
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from .adapter_files import ADAPTER_WEIGHTS
from .models import PipelineInUseError, pipeline_lock

# Per pipeline: adapter name -> how many running blocks hold it, least recently used first.
# Guarded by models.pipeline_lock().
_cached: "weakref.WeakKeyDictionary[object, OrderedDict[str, int]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class AdapterRef:
    """A character's adapter as the pipeline knows it: a unique name, its folder, its weight."""

    name: str
    folder: str
    weight: float


def activate(pipe, adapters: Sequence[AdapterRef]) -> None:
    """Make exactly these loaded adapters active, at their weights; none turns LoRA off."""
    if adapters:
        pipe.enable_lora()
        pipe.set_adapters([a.name for a in adapters], adapter_weights=[a.weight for a in adapters])
    elif any(pipe.get_list_adapters().values()):
        pipe.disable_lora()


@contextlib.contextmanager
def adapters_held(pipe, adapters: Iterable[AdapterRef], keep: int) -> Iterator[None]:
    """Hold these adapters in the pipeline for the block, loading the ones it lacks; after the
    block they stay loaded, up to `keep` adapters (0: unloaded as soon as nobody holds them)."""
    held = []
    try:
        with pipeline_lock():
            cached = _cached.setdefault(pipe, OrderedDict())
            present = _loaded(pipe)
            for adapter in {a.name: a for a in adapters}.values():
                if adapter.name not in cached:
                    if adapter.name in present:
                        continue  # another's: left alone
                    pipe.load_lora_weights(adapter.folder, weight_name=ADAPTER_WEIGHTS,
                                           adapter_name=adapter.name)
                    cached[adapter.name] = 0
                cached[adapter.name] += 1
                cached.move_to_end(adapter.name)
                held.append(adapter.name)
        yield
    finally:
        with pipeline_lock():
            cached = _cached.get(pipe, OrderedDict())
            for name in held:
                cached[name] -= 1
            _evict(pipe, keep)
            if cached and not any(cached.values()):
                pipe.disable_lora()  # idle: the pipeline draws exactly as the base model


def release_idle(pipe=None) -> None:
    """Unload every cached adapter nobody holds (and the LoRA layers, when none is left), in
    this pipeline or, with none given, in every one."""
    with pipeline_lock():
        for each in [pipe] if pipe is not None else list(_cached):
            _evict(each, 0)


def require_no_adapters(pipe, task: str) -> None:
    """Raise PipelineInUseError, naming them, when LoRA adapters are in use in the pipeline;
    idle cached ones are unloaded first. Call it holding `pipeline_lock()`, so that no
    adapter arrives before the task is done."""
    release_idle(pipe)
    loaded = sorted(_loaded(pipe))
    if loaded:
        raise PipelineInUseError(
            f"{task} needs the base model alone, but the shared pipeline has LoRA adapters "
            f"{loaded} loaded (is a book being illustrated in this process?); "
            "train when that is done")


def cached(pipe) -> list[str]:
    """The adapters this module keeps loaded in the pipeline, least recently used first."""
    with pipeline_lock():
        return list(_cached.get(pipe, ()))


def _evict(pipe, keep: int) -> None:
    """Unload idle adapters, least recently used first, until at most `keep` are cached."""
    cached = _cached.get(pipe)
    if not cached:
        return
    idle = [name for name, holders in cached.items() if not holders]
    going = idle[:max(0, len(cached) - keep)]
    if not going:
        return
    for name in going:
        del cached[name]
    pipe.enable_lora()
    pipe.delete_adapters(going)
    if not _loaded(pipe):
        pipe.unload_lora_weights()
        for component in pipe.components.values():  # unloading leaves this behind
            getattr(component, "__dict__", {}).pop("_hf_peft_config_loaded", None)


def _loaded(pipe) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}
