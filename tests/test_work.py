"""The user's work records: running work with its progress, its outcome, cancelling, a job
whose process ended, and what the app shows a parent who comes back (actions.work)."""
import dataclasses
import json

import pytest

from pipeline import work
from pipeline.actions import work as actions
from pipeline.progress import Progress
from pipeline.settings import Settings
from pipeline.store import StoreError


@pytest.fixture
def plain(tmp_path):
    return Settings(data_dir=tmp_path / "data")


def test_work_is_recorded_with_its_progress_and_outcome(plain, monkeypatch):
    monkeypatch.setattr(work, "WRITE_EVERY", 0.0)
    passed_on = []
    with work.recorded(plain, "alice", "training", "Mia", "Training Mia",
                       passed_on.append) as job:
        job.report(Progress(3, 10, "step", loss=0.25, seconds_left=70))
        [running] = actions.current_work(plain, "alice")
        assert running.running and running.describe() == ("Training Mia: step 3/10 · loss 0.250 "
                                                           "· about 70 s left")
        job.finish("Mia is trained (10 steps)", {"done": True})
    assert [p.done for p in passed_on] == [3]
    [done] = actions.current_work(plain, "alice")  # ended, not shown yet
    assert (done.state, done.message, done.result, done.seen) == (
        "done", "Mia is trained (10 steps)", {"done": True}, False)
    assert done.describe() == "Training Mia: Mia is trained (10 steps)"
    actions.mark_seen(plain, "alice", done.id)
    assert actions.current_work(plain, "alice") == []
    assert actions.latest_work(plain, "alice", "training").id == done.id
    assert actions.latest_work(plain, "alice", "illustration") is None
    assert actions.current_work(plain, "bob") == []  # another user's folder


def test_progress_is_written_at_most_every_so_often_but_always_at_the_end(plain, monkeypatch):
    writes = []
    update = work.WorkLog.update
    monkeypatch.setattr(work.WorkLog, "update",
                        lambda self, job_id, **changes: writes.append(changes) or
                        update(self, job_id, **changes))
    with work.recorded(plain, "alice", "training", "Mia", "Training Mia") as job:
        for step in range(1, 51):
            job.report(Progress(step, 50, "step"))
    progress = [w["progress"]["done"] for w in writes if "progress" in w]
    assert progress[0] == 1 and progress[-1] == 50 and len(progress) < 10
    assert writes[-1]["state"] == "done"


def test_cancelling_stops_the_work_at_its_next_report(plain):
    with pytest.raises(work.JobCancelled, match="Illustrating “Sea” was cancelled"):
        with work.recorded(plain, "alice", "illustration", "b1", "Illustrating “Sea”") as job:
            job.report(Progress(1, 3, "page"))
            [running] = actions.current_work(plain, "alice")
            assert actions.cancel_work(plain, "alice", running.id).cancel
            assert "cancelling" in actions.current_work(plain, "alice")[0].describe()
            job.report(Progress(2, 3, "page"))
            raise AssertionError("not stopped")
    [cancelled] = actions.current_work(plain, "alice")
    assert cancelled.state == "cancelled"
    assert cancelled.describe() == "Illustrating “Sea”: cancelled"
    with pytest.raises(ValueError, match="is not running any more"):
        actions.cancel_work(plain, "alice", cancelled.id)


def test_a_failure_is_recorded_and_raised_again(plain):
    with pytest.raises(RuntimeError, match="out of memory"):
        with work.recorded(plain, "alice", "training", "Mia", "Training Mia"):
            raise RuntimeError("the GPU ran out of memory")
    [failed] = actions.current_work(plain, "alice")
    assert (failed.state, failed.message) == ("failed", "the GPU ran out of memory")


def test_work_whose_process_is_gone_reads_as_stopped(plain):
    log = work.WorkLog(plain, "alice")
    job = log.begin("training", "Mia", "Training Mia")
    assert log.get(job.id).running
    record = log.root / f"{job.id}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "pid": 2 ** 22 + 7}))
    stopped = log.get(job.id)
    assert stopped.state == "stopped" and "restarted" in stopped.message
    elsewhere = {**json.loads(record.read_text()), "host": "another-machine"}
    record.write_text(json.dumps(elsewhere))
    assert log.get(job.id).running  # another machine's process: this one can't tell


def test_only_the_newest_finished_records_are_kept(plain, monkeypatch):
    monkeypatch.setattr(work, "KEEP", 3)
    for n in range(5):
        with work.recorded(plain, "alice", "training", f"C{n}", f"Training C{n}"):
            pass
    log = work.WorkLog(plain, "alice")
    running = log.begin("training", "C5", "Training C5")
    kept = log.recent()
    assert [job.subject for job in kept] == ["C5", "C4", "C3", "C2"]
    assert kept[0].id == running.id


def test_records_are_read_safely(plain):
    log = work.WorkLog(plain, "alice")
    for bad in ("../x", "a/b", ""):
        with pytest.raises(StoreError):
            log.get(bad)
    log.root.mkdir(parents=True, exist_ok=True)
    (log.root / "abc.json").write_text('{"id": "abc"}')  # damaged: left out
    (log.root / "def.json").write_text("{nope")
    assert log.recent() == []
    job = log.begin("training", "Mia", "Training Mia")
    assert [j.id for j in log.recent()] == [job.id]
    assert dataclasses.asdict(job) == job.to_json()
