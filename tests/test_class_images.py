import numpy as np
import pytest
from PIL import Image

from pipeline.store import user_dir
from pipeline.training.class_images import (class_image_dir, class_image_paths,
                                            generate_class_images, load_class_images)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_made_once_per_user_and_kind_in_the_users_folder(settings):
    folder = class_image_dir(settings, "alice", "Guinea Pig")
    assert folder == user_dir(settings, "alice") / "class_images" / "guinea-pig"
    assert generate_class_images(settings, "alice", "Guinea Pig", 2) == 2
    paths = class_image_paths(settings, "alice", "Guinea Pig", 2)
    assert [p.name for p in paths] == ["000.png", "001.png"]
    with Image.open(paths[0]) as image:
        assert image.size == (64, 64)
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert generate_class_images(settings, "alice", "Guinea Pig", 2) == 2  # reused, not redrawn
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assert class_image_paths(settings, "bob", "Guinea Pig", 2) == []


def test_made_in_slices_equals_made_at_once(settings):
    assert generate_class_images(settings, "alice", "dog", 3, max_images=1) == 1
    assert generate_class_images(settings, "alice", "dog", 3, max_images=1) == 2
    assert generate_class_images(settings, "alice", "dog", 3) == 3
    generate_class_images(settings, "carol", "dog", 3)
    sliced = load_class_images(settings, "alice", "dog", 3)
    whole = load_class_images(settings, "carol", "dog", 3)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(sliced, whole))
    assert not np.array_equal(np.asarray(sliced[0]), np.asarray(sliced[1]))


def test_more_images_extend_the_set(settings):
    generate_class_images(settings, "alice", "cat", 1)
    first = (class_image_dir(settings, "alice", "cat") / "000.png").read_bytes()
    progress = []
    assert generate_class_images(settings, "alice", "cat", 2, on_progress=progress.append) == 2
    assert (class_image_dir(settings, "alice", "cat") / "000.png").read_bytes() == first
    assert [(p.done, p.total, p.unit) for p in progress] == [(2, 2, "class image")]


def test_loaded_at_the_training_resolution(settings):
    folder = class_image_dir(settings, "alice", "girl")
    folder.mkdir(parents=True)
    Image.new("RGB", (96, 96), "red").save(folder / "000.png")
    images = load_class_images(settings, "alice", "girl", 4)
    assert len(images) == 1 and images[0].size == (64, 64)
