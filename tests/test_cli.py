"""pipeline/cli/__init__.py: every failure is one line on stderr, never a traceback (the
commands themselves are tested with their areas: test_train, test_illustrate, ...)."""
import errno

from pipeline import cli, store
from pipeline.actions import books


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
