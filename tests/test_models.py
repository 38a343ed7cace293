import os
import threading
import time

import numpy as np
import pytest
import torch

from pipeline import models
from pipeline.hardware import Hardware
from pipeline.settings import Settings


def _render(pipe, seed):
    return np.array(pipe("a photo of a girl in a garden", num_inference_steps=2, height=64,
                         width=64, generator=torch.Generator().manual_seed(seed)).images[0])


def test_tiny_model_loads_through_models_and_renders(settings):
    from diffusers import StableDiffusionXLPipeline

    pipe = models.load_pipeline(settings)
    assert isinstance(pipe, StableDiffusionXLPipeline)
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.addition_embed_type == "text_time"
    image = _render(pipe, 1)
    assert image.shape == (64, 64, 3) and image.std() > 0


def test_same_seed_same_image_other_seed_other_image(settings):
    pipe = models.load_pipeline(settings)
    assert np.array_equal(_render(pipe, 7), _render(pipe, 7))
    assert not np.array_equal(_render(pipe, 7), _render(pipe, 8))


def test_one_instance_per_model_device_and_dtype(settings):
    first = models.load_pipeline(settings)
    assert models.load_pipeline(settings) is first
    bf16 = Hardware(kind="cpu", device="cpu", dtype="bfloat16", name="CPU")
    other = models.load_pipeline(settings, bf16)
    assert other is not first and other.unet.dtype == torch.bfloat16


def test_fp16_fix_vae_only_where_it_matters():
    s = Settings()
    half = Hardware(kind="cuda", device="cuda", dtype="float16", name="T4")
    assert models.vae_source(s, half) == "madebyollin/sdxl-vae-fp16-fix"
    assert models.vae_source(s, Hardware("cuda", "cuda", "bfloat16", "H100")) == ""
    assert models.vae_source(Settings(vae=""), half) == ""


def test_unreachable_hub_model_names_the_setting(tmp_path):
    s = Settings(base_model="someone/not-cached-anywhere", device="cpu", data_dir=tmp_path)
    with pytest.raises(models.ModelUnavailableError) as err:
        models.load_pipeline(s)
    assert "TALEWEAVER_BASE_MODEL" in str(err.value) and "offline" in str(err.value)


def test_missing_local_folder_names_the_setting(tmp_path):
    s = Settings(base_model=str(tmp_path / "nope"), device="cpu")
    with pytest.raises(models.ModelUnavailableError, match="TALEWEAVER_BASE_MODEL=.*no such folder"):
        models.load_pipeline(s)


def test_separate_vae_that_cannot_load_names_its_setting(settings):
    import dataclasses
    s = dataclasses.replace(settings, vae="someone/missing-vae", dtype="float16")
    with pytest.raises(models.ModelUnavailableError, match="TALEWEAVER_VAE"):
        models.load_pipeline(s)


def test_one_reentrant_pipeline_lock_for_the_whole_process():
    lock = models.pipeline_lock()
    assert models.pipeline_lock() is lock
    taken = []
    with lock, models.pipeline_lock():  # re-entrant: a render inside a training chunk's hold
        other = threading.Thread(target=lambda: taken.append(lock.acquire(timeout=0.2)))
        other.start()
        other.join()
    assert taken == [False]  # another thread waits its turn
    assert lock.acquire(timeout=1)
    lock.release()


def _wait_for_child(pid: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked worker hung on a lock its parent's thread held")
        time.sleep(0.02)


def test_a_forked_worker_gets_fresh_locks_while_a_parent_thread_holds_them(settings, monkeypatch):
    """As on ZeroGPU, where each GPU call runs in a worker forked while other users' threads
    may be loading a model or drawing: the worker must not wait forever for them."""
    models.clear_cache()  # so that the bfloat16 pipeline below really loads
    pipe = models.load_pipeline(settings)
    loading, release = threading.Event(), threading.Event()
    real_load = models._load

    def slow_load(*args, **kwargs):  # a model load: the cache lock is held meanwhile
        loading.set()
        release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(models, "_load", slow_load)
    bf16 = Hardware(kind="cpu", device="cpu", dtype="bfloat16", name="CPU")

    def hold_both_locks():
        with models.pipeline_lock():
            models.load_pipeline(settings, bf16)

    holder = threading.Thread(target=hold_both_locks)
    holder.start()
    try:
        assert loading.wait(10)
        pid = os.fork()
        if pid == 0:  # the worker: report through the exit code, never return into pytest
            ok = False
            try:
                lock = models.pipeline_lock()
                ok = lock.acquire(timeout=5) and models.load_pipeline(settings) is pipe
                lock.release()
            finally:
                os._exit(0 if ok else 1)
        assert _wait_for_child(pid, 30) == 0
        assert not models.pipeline_lock().acquire(timeout=0.1)  # the parent's is still held
    finally:
        release.set()
        holder.join()
    assert models.load_pipeline(settings, bf16).unet.dtype == torch.bfloat16
