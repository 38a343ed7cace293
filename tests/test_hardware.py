import pytest

from pipeline import hardware
from pipeline.settings import Settings, SettingsError


def test_cpu_machine_chooses_cpu_and_float32():
    hw = hardware.detect(Settings())
    assert (hw.kind, hw.device, hw.dtype, hw.has_gpu) == ("cpu", "cpu", "float32", False)
    import torch
    assert hw.torch_dtype is torch.float32


def test_dtype_override_is_respected():
    assert hardware.detect(Settings(dtype="bfloat16")).dtype == "bfloat16"


def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(SettingsError, match="TALEWEAVER_DEVICE='cuda'.*no CUDA GPU"):
        hardware.detect(Settings(device="cuda"))


def test_not_on_zerogpu_here():
    assert hardware.on_zerogpu() is False


def test_gpu_decorator_is_a_no_op_off_zerogpu():
    def work(x, steps=3):
        return x * steps

    assert hardware.gpu(duration=30)(work) is work
    assert hardware.gpu(duration=lambda x, steps=3: steps * 2.0)(work) is work
    assert work(2) == 6


def test_gpu_decorator_uses_spaces_gpu_on_zerogpu(monkeypatch):
    calls = []

    class FakeSpaces:
        @staticmethod
        def GPU(duration):
            calls.append(duration)
            return lambda fn: ("wrapped", fn)

    monkeypatch.setattr(hardware, "on_zerogpu", lambda: True)
    monkeypatch.setitem(__import__("sys").modules, "spaces", FakeSpaces)
    estimate = lambda steps: steps * 0.5  # noqa: E731
    wrapped = hardware.gpu(duration=estimate)(len)
    assert wrapped == ("wrapped", len) and calls == [estimate]


def test_duration_estimates():
    assert hardware.estimated_duration(45) == 45.0
    assert hardware.estimated_duration(lambda pages, s=2.0: pages * s, 3) == 6.0
    with pytest.raises(ValueError, match="positive seconds"):
        hardware.gpu(duration=0)
