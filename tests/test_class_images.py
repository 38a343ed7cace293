import numpy as np
import pytest
from PIL import Image

from pipeline.store import user_dir
from pipeline.training.config import TrainConfig
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


def test_drawn_smaller_and_faster_on_the_cpu_and_redrawn_for_another_model(settings, tmp_path):
    import dataclasses
    import json

    from pipeline.hardware import detect
    from pipeline.training.estimate import class_image_plan, image_seconds

    large = dataclasses.replace(settings, resolution=640)
    side, steps = class_image_plan(large, detect(large))
    assert (side, steps) == (512, 12)  # the CPU's size and steps, not 640 px in 25 steps
    assert image_seconds(large, detect(large), TrainConfig(), steps, side) is None
    progress = []
    generate_class_images(large, "alice", "girl", 2, on_progress=progress.append)
    folder = class_image_dir(large, "alice", "girl")
    with Image.open(folder / "000.png") as image:
        assert image.size == (512, 512)
    assert json.loads((folder / "made_with.json").read_text()) == {
        "base_model": settings.base_model, "size": 512, "steps": 12}
    assert progress[0].seconds_left > 0 and progress[-1].seconds_left == 0
    assert image_seconds(large, detect(large), TrainConfig(), steps, side) > 0  # timed
    assert len(class_image_paths(large, "alice", "girl", 2)) == 2
    elsewhere = dataclasses.replace(large, base_model=str(tmp_path / "another-model"))
    assert class_image_paths(elsewhere, "alice", "girl", 2) == []  # another model's set
    assert len(class_image_paths(settings, "alice", "girl", 2)) == 0  # another size
