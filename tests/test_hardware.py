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


@pytest.fixture
def threads_as_they_were(monkeypatch):
    """No OpenMP variables in the environment (monkeypatch puts them back), and torch's thread
    count restored after the test."""
    import torch

    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    count = torch.get_num_threads()
    yield
    torch.set_num_threads(count)


def test_usable_cpus_follow_a_container_quota(tmp_path, monkeypatch):
    import os

    mine = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(hardware, "CGROUP_CPU_MAX", quota)
    assert hardware.usable_cpus() == mine  # no cgroup file: the CPUs it may run on
    quota.write_text("max 100000\n")
    assert hardware.usable_cpus() == mine
    quota.write_text("50000 100000\n")  # half a CPU: one thread
    assert hardware.usable_cpus() == 1
    assert hardware.cpu_threads(Settings()) == 1
    assert hardware.cpu_threads(Settings(cpu_threads=3)) == 3


def test_a_process_gets_its_threads_and_sleeping_idle_threads(threads_as_they_were):
    import os

    import torch

    assert hardware.use_cpu_threads(Settings(cpu_threads=1)) == 1
    assert torch.get_num_threads() == 1  # torch was imported already: set directly
    assert (os.environ["OMP_NUM_THREADS"], os.environ["OMP_WAIT_POLICY"]) == ("1", "PASSIVE")


def test_what_the_starter_of_the_process_set_wins(threads_as_they_were, monkeypatch):
    import os

    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    before = torch.get_num_threads()
    assert hardware.use_cpu_threads(Settings()) is None
    assert torch.get_num_threads() == before and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert hardware.use_cpu_threads(Settings(cpu_threads=1)) == 1  # the setting is explicit


@pytest.mark.slow
def test_the_cli_sets_up_threads_before_torch_is_imported():
    import os
    import subprocess
    import sys

    code = ("import sys; from pipeline.cli import main; "
            "main(['styles'], whole_process=True); import os, torch; "
            "print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "TALEWEAVER_"))}
    env["TALEWEAVER_CPU_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out[-2:] == ["1", "PASSIVE"]


def test_off_a_space_spaces_is_not_even_imported(monkeypatch):
    import subprocess
    import sys

    code = ("import sys; from pipeline import hardware; "
            "print(hardware.on_zerogpu(), 'spaces' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=__import__("pathlib").Path(__file__).parent.parent)
    assert out.stdout.split() == ["False", "False"]
