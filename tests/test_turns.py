"""pipeline/turns.py: the GPU's line. Threads stand in for users' jobs; each unit of work
records when it ran, so the order is checked, not the timing."""
import threading
import time

import pytest

from pipeline.turns import Busy, Turns


class Recorder:
    """Runs units of work in turns and records the order they ran in."""

    def __init__(self, turns: Turns):
        self.turns, self.ran, self.lock = turns, [], threading.Lock()

    def unit(self, user: str, label: str, *, exclusive=False, hold: threading.Event = None):
        with self.turns.turn(user, exclusive=exclusive):
            with self.lock:
                self.ran.append(label)
            if hold is not None:
                assert hold.wait(10)


def started(target, *args, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs)
    thread.start()
    return thread


def waiting(turns: Turns, count: int) -> None:
    """Until `count` units wait in the line."""
    deadline = time.monotonic() + 10
    while len(turns._waiting) < count:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_users_single_page_waits_for_one_unit_of_a_long_job_not_all_of_it():
    turns = Turns()
    record = Recorder(turns)
    first = threading.Event()
    book = started(lambda: [record.unit("alice", "alice-1", hold=first)] +
                   [record.unit("alice", f"alice-{n}") for n in range(2, 6)])
    while record.ran != ["alice-1"]:
        time.sleep(0.005)
    page = started(record.unit, "bob", "bob-page")
    waiting(turns, 1)
    first.set()
    book.join(10), page.join(10)
    assert record.ran[:2] == ["alice-1", "bob-page"]  # bob's page right after alice's page
    assert record.ran[2:] == [f"alice-{n}" for n in range(2, 6)]


def test_turns_go_round_robin_between_users():
    turns = Turns()
    record = Recorder(turns)
    hold = threading.Event()
    blocker = started(record.unit, "zed", "zed", hold=hold)
    while record.ran != ["zed"]:
        time.sleep(0.005)
    threads = []
    for user, count in (("alice", 3), ("bob", 2), ("carol", 1)):
        for n in range(1, count + 1):
            threads.append(started(record.unit, user, f"{user}-{n}"))
            waiting(turns, len(threads))
    hold.set()
    for thread in [blocker, *threads]:
        thread.join(10)
    users = [label.split("-")[0] for label in record.ran[1:]]
    assert users[:3] == ["alice", "bob", "carol"]  # each user once before anyone twice
    assert users[3:] == ["alice", "bob", "alice"]


def test_each_user_may_have_only_so_many_jobs_at_once():
    turns = Turns()
    with turns.job("alice", 2, "this page"), turns.job("alice", 2, "this page"):
        with pytest.raises(Busy, match="you already have 2 .* running or waiting.*this page"):
            with turns.job("alice", 2, "this page"):
                pass
        with turns.job("bob", 2, "this page"):  # other users are not counted against her
            pass
    with turns.job("alice", 2, "this page"):  # done jobs no longer count
        pass


def test_training_waits_for_books_holding_adapters_and_new_books_wait_for_it():
    turns = Turns()
    record = Recorder(turns)
    book_done = threading.Event()

    def book():
        with turns.adapters_held():
            record.unit("alice", "alice-page-1")
            assert book_done.wait(10)
            record.unit("alice", "alice-page-2")

    first_book = started(book)
    while record.ran != ["alice-page-1"]:
        time.sleep(0.005)
    training = started(record.unit, "bob", "bob-training", exclusive=True)
    waiting(turns, 1)
    later_book = threading.Event()

    def second_book():
        with turns.adapters_held():
            later_book.set()
            record.unit("carol", "carol-page")

    carol = started(second_book)
    time.sleep(0.1)
    assert record.ran == ["alice-page-1"] and not later_book.is_set()
    book_done.set()
    for thread in (first_book, training, carol):
        thread.join(10)
    assert record.ran == ["alice-page-1", "alice-page-2", "bob-training", "carol-page"]


def test_a_cancelled_wait_leaves_the_line_at_once():
    turns = Turns()
    hold = threading.Event()
    record = Recorder(turns)
    busy = started(record.unit, "alice", "alice", hold=hold)
    while record.ran != ["alice"]:
        time.sleep(0.005)
    reports = []

    class Cancelled(Exception):
        pass

    def on_wait(ahead):
        reports.append(ahead)
        raise Cancelled

    with pytest.raises(Cancelled):
        with turns.turn("bob", on_wait=on_wait):
            pass
    assert reports == [1] and turns._waiting == []
    hold.set()
    busy.join(10)
    with turns.turn("carol"):  # the line still works
        pass
