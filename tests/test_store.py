import os

import pytest

from pipeline import store


def test_user_dirs_are_separate_and_names_checked(settings):
    a, b = store.user_dir(settings, "alice"), store.user_dir(settings, "bob-2")
    assert a != b and a.parent == b.parent == settings.data_dir / "users"
    for bad in ("", "../bob", "a/b", ".hidden", "..", "x" * 200):
        with pytest.raises(store.StoreError):
            store.user_dir(settings, bad)


@pytest.mark.parametrize("text, slug", [
    ("Mia", "mia"), ("Zoë's Cat", "zoes-cat"), ("D'Arcy", "darcy"),
    ("  Grandma   Rose ", "grandma-rose"), ("../../etc/passwd", "etc-passwd"),
])
def test_slugify(text, slug):
    assert store.slugify(text) == slug


def test_slugify_non_latin_and_long_names():
    assert store.slugify("小明").startswith("x-") and store.slugify("小明") == store.slugify("小明")
    assert store.slugify("小明") != store.slugify("小红")
    assert len(store.slugify("a" * 500)) <= 40


def test_inside_refuses_to_leave_the_root(tmp_path):
    assert store.inside(tmp_path, "a", "b.json") == tmp_path / "a" / "b.json"
    for bad in (("..", "x"), ("/etc/passwd",), (".",), ("a", "../../x")):
        with pytest.raises(store.StoreError):
            store.inside(tmp_path, *bad)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    store.atomic_write_json(path, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.atomic_write_json(path, {"v": 2})
    assert store.read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_read_json_names_damaged_and_missing_files_without_their_server_path(tmp_path):
    (tmp_path / "mia").mkdir()
    (tmp_path / "mia" / "bad.json").write_text("{not json")
    with pytest.raises(store.StoreError, match="^mia/bad.json is damaged") as damaged:
        store.read_json(tmp_path / "mia" / "bad.json")
    with pytest.raises(store.StoreError, match="^mia/gone.json not found") as missing:
        store.read_json(tmp_path / "mia" / "gone.json")
    for err in (damaged, missing):
        assert str(tmp_path) not in str(err.value)


def test_staged_dir_appears_whole_or_not_at_all(tmp_path):
    with store.staged_dir(tmp_path / "ok") as tmp:
        (tmp / "a.txt").write_text("a")
    assert (tmp_path / "ok" / "a.txt").read_text() == "a"
    with pytest.raises(RuntimeError):
        with store.staged_dir(tmp_path / "broken") as tmp:
            (tmp / "a.txt").write_text("a")
            raise RuntimeError("crash mid-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_remove_tree(tmp_path):
    (tmp_path / "c" / "crops").mkdir(parents=True)
    (tmp_path / "c" / "crops" / "1.png").write_bytes(b"x")
    store.remove_tree(tmp_path / "c")
    assert list(tmp_path.iterdir()) == []
    store.remove_tree(tmp_path / "missing")
