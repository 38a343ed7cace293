"""What every CLI command shares (pipeline/cli/__init__.py and core.py): every failure is one
line on stderr, never a traceback; quiet libraries unless --verbose; the exit status of a
command that didn't do what was asked. (The commands themselves are tested with their areas:
test_train, test_illustrate, ...)"""
import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pipeline import cli, store
from pipeline.actions import books
from pipeline.cli import main
from pipeline.cli.core import LIBRARY_QUIET, quiet_libraries

ROOT = Path(__file__).resolve().parent.parent
DEVELOPER_NOISE = ("No LoRA keys associated", "torchvision", "Loading pipeline components",
                   "Loading weights", "gemm_4bit_forward", "Writing model shards")


def test_quiet_libraries_sets_and_restores_the_environment_and_filters(monkeypatch):
    for key in LIBRARY_QUIET:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DIFFUSERS_VERBOSITY", "info")  # a developer's own choice wins
    filters = list(warnings.filters)
    with quiet_libraries(verbose=False):
        assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
        assert os.environ["DIFFUSERS_VERBOSITY"] == "info"
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn_explicit("a notice", UserWarning, "x.py", 1, module="torchvision.io")
            warnings.warn_explicit("ours", UserWarning, "y.py", 1, module="pipeline.story")
        assert [str(w.message) for w in caught] == ["ours"]
    assert "TRANSFORMERS_VERBOSITY" not in os.environ and warnings.filters == filters
    with quiet_libraries(verbose=True):
        assert "TRANSFORMERS_VERBOSITY" not in os.environ


def test_a_push_without_a_token_exits_with_1(settings, mia, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code = main(["--data-dir", str(settings.data_dir), "--user", "alice", "push", "Mia"])
    out = capsys.readouterr()
    assert code == 1 and out.out == ""
    assert out.err.startswith("Upload skipped: no Hugging Face token.")


@pytest.mark.slow
def test_commands_print_no_library_warnings_meant_for_developers(two_trained_characters,
                                                                  tiny_model_dir, tiny_safety_dir,
                                                                  tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALEWEAVER_")}
    env.update(TALEWEAVER_BASE_MODEL=str(tiny_model_dir), TALEWEAVER_DEVICE="cpu",
               TALEWEAVER_RESOLUTION="64", TALEWEAVER_SAFETY_MODEL=str(tiny_safety_dir))
    command = [sys.executable, "-m", "pipeline", "--data-dir",
               str(two_trained_characters.data_dir), "try-character", "Mia", "--scene",
               "on a swing", "--seed", "3", "--out", str(tmp_path / "try.png")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Saved {tmp_path / 'try.png'}: Mia on a swing")
    assert not [noise for noise in DEVELOPER_NOISE if noise in done.stderr], done.stderr
    verbose = subprocess.run(command + ["--verbose"], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=300)
    assert "No LoRA keys associated" in verbose.stderr  # for whoever asks


def test_an_unexpected_error_is_one_line(book_settings, monkeypatch, capsys):
    def broken(settings, user):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(books, "list_books", broken)
    assert cli.main(["books", "--data-dir", str(book_settings.data_dir)]) == 1
    err = capsys.readouterr().err
    assert err == "error: TypeError: unsupported operand\n"


def test_a_full_disk_says_so_and_nothing_is_half_written(illustrated_book, book_settings,
                                                        monkeypatch, capsys):
    library, book = illustrated_book
    record = library.folder(book.id) / "book.json"
    before = record.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", no_space)
    common = ["--data-dir", str(book_settings.data_dir), "--user", "alice"]
    assert cli.main(["choose-candidate", book.id, "1", "1", *common]) == 1
    assert capsys.readouterr().err == "error: the disk is full: nothing was saved\n"
    assert record.read_bytes() == before
    assert not [p for p in library.folder(book.id).iterdir() if p.name.endswith(".tmp")]
