"""app.background: one-shot tasks and the library thread deliver in the GUI thread, fail one way, say where they started."""

from __future__ import annotations

import logging
import threading

from app.background import LibraryThread, run_in_thread
from engine.errors import UserError
from tests.gui.conftest import _running_threads


def _collect(qtbot, **kwargs):
    """Start a task and wait for its thread to end; (done values, failure messages, the GUI thread's share)."""
    outcome = {"done": [], "failed": [], "progress": [], "after": [], "in_gui_thread": []}
    def record(key):
        def receive(value):
            outcome["in_gui_thread"].append(threading.current_thread() is threading.main_thread())
            outcome[key].append(value)
        return receive

    task = run_in_thread(kwargs.pop("function"), record("done"), record("failed"),
                         progress=record("progress") if kwargs.pop("progress", False) else None,
                         after=lambda: record("after")("ended"), **kwargs)
    qtbot.waitUntil(lambda: task.ended, timeout=10_000)  # after the outcome, which comes first
    return outcome


def test_a_task_answers_in_the_gui_thread_with_its_result_and_progress(qtbot):
    def count(report):
        for i in range(3):
            report(i)
        return "counted"

    outcome = _collect(qtbot, function=count, progress=True, what="counting")
    assert outcome["progress"] == [0, 1, 2] and outcome["done"] == ["counted"] and outcome["failed"] == []
    assert all(outcome["in_gui_thread"])


def test_a_task_that_ends_at_once_still_calls_after(qtbot):
    """after() is set before the thread starts: a finished signal connected after start() was lost."""
    for _ in range(20):
        outcome = _collect(qtbot, function=lambda: None, what="nothing")
        assert outcome["done"] == [None] and outcome["after"] == ["ended"]


def test_a_typed_error_is_the_message_and_a_bug_is_logged_with_its_traceback(qtbot, caplog):
    def refuse():
        raise UserError("there is no library yet")

    def crash():
        return {}["missing"]

    assert _collect(qtbot, function=refuse, what="reading")["failed"] == ["there is no library yet"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # the person's to fix: not a bug
    with caplog.at_level(logging.ERROR, logger="app.background"):
        outcome = _collect(qtbot, function=crash, what="reading the library")
    assert outcome["failed"] == ["reading the library failed: 'missing'"] and outcome["done"] == []
    record = next(r for r in caplog.records if r.name == "app.background")
    assert record.exc_info is not None and record.exc_info[0] is KeyError  # the traceback is logged


def test_a_thread_left_running_is_reported_with_where_it_was_started(qtbot):
    release = threading.Event()
    task = run_in_thread(lambda: release.wait(10), what="waiting")
    try:
        busy = "\n".join(_running_threads())
        assert "lookalike: waiting" in busy
        assert "test_background.py" in busy and "test_a_thread_left_running_is_reported" in busy
    finally:
        release.set()
        task.stop()


def test_the_library_thread_runs_calls_in_order_and_drops_stale_ones(qtbot, tmp_path):
    owner = LibraryThread(tmp_path / "no-library", "lookalike-test")
    answers: list = []
    gate = threading.Event()
    latest = {"request": 1}
    owner.call(lambda worker: gate.wait(10), what="waiting")  # holds the thread while the calls queue
    for request in (1, 2, 3):
        latest["request"] = request
        owner.call(lambda worker, r=request: r, answers.append, what="search",
                   stale=lambda r=request: r != latest["request"])
    owner.call(lambda worker: worker.library(), answers.append, answers.append, what="opening")
    owner.call(lambda worker: worker.library_or_none(), answers.append, what="looking")
    gate.set()
    qtbot.waitUntil(lambda: len(answers) == 3, timeout=10_000)
    owner.shutdown()
    assert answers[0] == 3  # only the last of the burst ran
    assert answers[1].startswith("no Lookalike library at ")  # a typed error: its own words
    assert answers[2] is None
    assert not owner.thread.isRunning()
