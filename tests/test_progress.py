"""pipeline/progress.py: progress lines, durations and counts in words."""
from pipeline.progress import Progress, counted, format_seconds


def test_a_progress_line():
    line = Progress(120, 400, "step", "saving", loss=0.0812, seconds_left=130).describe()
    assert line == "step 120/400 · loss 0.081 · about 2 min left · saving"
    assert Progress(0, 0, "page").fraction == 1.0


def test_durations_as_people_say_them():
    assert [format_seconds(s) for s in (-3, 45, 89.4, 150, 5000, 6000)] == [
        "0 s", "45 s", "89 s", "2 min", "83 min", "1 h 40 min"]


def test_counts_in_words():
    assert [counted(n, "photo") for n in (0, 1, 2)] == ["0 photos", "1 photo", "2 photos"]
    assert counted(1, "child", "children") == "1 child"
    assert counted(3, "child", "children") == "3 children"
