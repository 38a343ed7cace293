import pytest
import torch

from pipeline.training.checkpoint import (PROGRESS_FILE, STATE_FILE, CorruptCheckpoint,
                                          clear_checkpoint,
                                          TrainingState, load_checkpoint, save_checkpoint,
                                          saved_progress, set_aside)

KEY = {"config": {"rank": 4}, "base_model": "tiny"}


def _state(step: int) -> TrainingState:
    generator = torch.Generator().manual_seed(step)
    return TrainingState(step=step, key=KEY,
                         lora={"unet.a.lora_A.weight": torch.randn(4, 8, generator=generator)},
                         optimizer={"state": {0: {"step": torch.tensor(float(step)),
                                                  "exp_avg": torch.randn(4, 8, generator=generator)}},
                                    "param_groups": [{"lr": 1e-4, "params": [0]}]},
                         lr_scheduler={"last_epoch": step, "_last_lr": [1e-4]})


def test_round_trip_is_exact(tmp_path):
    state = _state(17)
    save_checkpoint(tmp_path, state, total=40)
    loaded = load_checkpoint(tmp_path)
    assert loaded.step == 17 and loaded.key == KEY and loaded.grad_scaler is None
    assert torch.equal(loaded.lora["unet.a.lora_A.weight"], state.lora["unet.a.lora_A.weight"])
    assert torch.equal(loaded.optimizer["state"][0]["exp_avg"], state.optimizer["state"][0]["exp_avg"])
    assert loaded.lr_scheduler == state.lr_scheduler
    assert sorted(p.name for p in tmp_path.iterdir()) == [PROGRESS_FILE, STATE_FILE]


def test_no_checkpoint_is_none(tmp_path):
    assert load_checkpoint(tmp_path) is None
    assert saved_progress(tmp_path, KEY) == 0


def test_a_new_checkpoint_replaces_the_old_one(tmp_path):
    save_checkpoint(tmp_path, _state(5), total=40)
    save_checkpoint(tmp_path, _state(10), total=40)
    assert load_checkpoint(tmp_path).step == 10
    assert saved_progress(tmp_path, KEY) == 10
    assert saved_progress(tmp_path, {**KEY, "base_model": "other"}) == 0


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint at all", None])
def test_damaged_file_is_a_clear_error_and_can_be_set_aside(tmp_path, damage):
    save_checkpoint(tmp_path, _state(5), total=40)
    path = tmp_path / STATE_FILE
    path.write_bytes(path.read_bytes()[:200] if damage is None else damage)
    with pytest.raises(CorruptCheckpoint, match=STATE_FILE):
        load_checkpoint(tmp_path)
    aside = set_aside(tmp_path)
    assert aside.name.startswith(f"{STATE_FILE}.corrupt-") and aside.exists()
    assert load_checkpoint(tmp_path) is None


def test_a_file_of_other_content_is_corrupt(tmp_path):
    torch.save({"something": "else"}, tmp_path / STATE_FILE)
    with pytest.raises(CorruptCheckpoint):
        load_checkpoint(tmp_path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, _state(5), total=40)

    def broken_save(obj, buffer):
        buffer.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, _state(9), total=40)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).step == 5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_saving_streams_the_state_to_disk_without_a_copy_in_memory(tmp_path):
    import tracemalloc

    big = torch.randn(2_000_000)  # 8 MB of weights, and as much optimizer state
    state = TrainingState(step=3, key=KEY, lora={"unet.w": big},
                          optimizer={"state": {0: {"exp_avg": big.clone()}}, "param_groups": []},
                          lr_scheduler={})
    tracemalloc.start()
    try:
        save_checkpoint(tmp_path, state, total=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # bytes held by Python while writing 16 MB: no buffer of the state
    assert torch.equal(load_checkpoint(tmp_path).lora["unet.w"], big)


def test_clearing_leaves_nothing_of_the_run(tmp_path):
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, _state(5), total=40)
    clear_checkpoint(folder)
    assert not folder.exists() and list(tmp_path.iterdir()) == []
    assert load_checkpoint(folder) is None and saved_progress(folder, KEY) == 0
    clear_checkpoint(folder)  # nothing to clear is fine
