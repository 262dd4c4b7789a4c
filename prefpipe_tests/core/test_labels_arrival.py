"""When arriving labels start a batch's run: at once when complete, at most hourly while arriving."""

from __future__ import annotations

import json

from prefpipe.core.labels_arrival import due_runs


def queue(batch: str, answered: int, wanted: int = 6, waiting: int | None = None) -> dict:
    return {"batch_id": batch, "items": 3, "labels_wanted": wanted, "answered": answered,
            "waiting": waiting if waiting is not None else (0 if answered >= wanted else 1)}


def test_the_first_look_only_remembers():
    due, cursor = due_runs([queue("b", 6)], {"b"}, None, now=1000.0)
    assert due == [] and json.loads(cursor)["b"]["answered"] == 6


def test_a_queue_that_completes_runs_at_once_and_only_once():
    _, cursor = due_runs([queue("b", 2)], {"b"}, None, now=0.0)
    due, cursor = due_runs([queue("b", 6)], {"b"}, cursor, now=10.0)
    assert [(d.batch_id, d.run_key) for d in due] == [("b", "labels-complete:b:6")]
    again, cursor = due_runs([queue("b", 6)], {"b"}, cursor, now=20.0)
    assert again == []


def test_arriving_labels_run_at_most_once_an_hour():
    _, cursor = due_runs([queue("b", 0)], {"b"}, None, now=0.0)
    due, cursor = due_runs([queue("b", 1)], {"b"}, cursor, now=100.0)
    assert [d.run_key for d in due] == ["labels-arriving:b:1"]
    due, cursor = due_runs([queue("b", 3)], {"b"}, cursor, now=200.0)
    assert due == []  # within the hour
    due, cursor = due_runs([queue("b", 3)], {"b"}, cursor, now=100.0 + 3600)
    assert [d.run_key for d in due] == ["labels-arriving:b:3"]  # the held-back answers still count as new
    due, cursor = due_runs([queue("b", 6)], {"b"}, cursor, now=100.0 + 3601)
    assert [d.run_key for d in due] == ["labels-complete:b:6"]  # completion does not wait for the hour


def test_unregistered_batches_and_empty_queues_are_left_alone():
    _, cursor = due_runs([queue("x", 0), {**queue("b", 0), "items": 0}], {"b"}, None, now=0.0)
    due, _ = due_runs([queue("x", 6), {**queue("b", 6), "items": 0}], {"b"}, cursor, now=10.0)
    assert due == []
