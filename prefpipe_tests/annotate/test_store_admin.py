"""The admin page's figures from the store (store/admin.py), on SQLite and on PostgreSQL: each
batch's queue progress and each annotator's counts, gold accuracy with its Wilson interval, flag,
median time on task and last seen, exactly, on the small store of admin_scenario."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from statsmodels.stats.proportion import proportion_confint

from prefpipe.annotate.store import iso_utc
from prefpipe.annotate.store.admin import wilson_interval
from prefpipe_tests.annotate import admin_scenario
from prefpipe_tests.annotate.conftest import BACKENDS, enqueue, pairs, rows


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def played(store_at, clock):
    with store_at(gold_policy=admin_scenario.POLICY, clock=clock) as store:
        yield store, admin_scenario.build(store, clock)


def test_queue_progress_counts_every_batch_exactly(played):
    store, _ = played
    progress = store.queue_progress()
    assert [{k: v for k, v in b.items() if k != "updated_at"} for b in progress] == admin_scenario.BATCHES
    assert all(isinstance(b["updated_at"], float) for b in progress)
    b1 = store.batch_status("b1")  # the older per-batch figures agree where they count the same things
    assert (b1["items"], b1["gold_items"], b1["labels_wanted"]) == (3, 2, 6)


def _statements(store, *calls) -> list[str]:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        for call in calls:
            call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    return statements


def test_the_figures_take_the_same_few_queries_whatever_the_size_of_the_store(played, clock):
    store, _ = played
    before = _statements(store, store.queue_progress, store.annotator_report)
    enqueue(store, "b3", pairs(40, prefix="r", priority=5.0), per_item=1)  # before b1: no gold beside it
    who = store.authenticate(store.add_annotator("erin"))
    for _ in range(25):
        task = store.next_task(who)
        clock.advance(2.0)
        store.answer(who, task.task_id, "A=B")
    assert _statements(store, store.queue_progress, store.annotator_report) == before
    assert len([s for s in before if "SELECT" in s]) == 5  # 3 for the batches, 2 (and the answer times, read raw) for the annotators
    b3 = next(b for b in store.queue_progress() if b["batch_id"] == "b3")
    assert (b3["items"], b3["answered"], b3["complete"], b3["waiting"]) == (40, 25, 25, 15)
    assert next(r for r in store.annotator_report() if r["name"] == "erin")["median_time_on_task_s"] == 2.0


def test_annotator_report_has_counts_interval_flag_time_and_last_seen(played):
    store, scenario = played
    report = {row["name"]: row for row in store.annotator_report()}
    assert sorted(report) == sorted(admin_scenario.ANNOTATORS)
    for name, (role, answered, skipped, gold_answers, gold_correct, flagged, median_s) in admin_scenario.ANNOTATORS.items():
        row = report[name]
        assert (row["role"], row["answered"], row["skipped"], row["gold_answers"], row["gold_correct"], row["flagged"],
                row["median_time_on_task_s"]) == (role, answered, skipped, gold_answers, gold_correct, flagged, median_s), name
        assert row["last_seen_at"] == iso_utc(scenario.last_seen[name]), name
        if gold_answers:
            low, high = proportion_confint(gold_correct, gold_answers, alpha=0.05, method="wilson")
            assert row["gold_ci_low"] == pytest.approx(low, abs=1e-12) and row["gold_ci_high"] == pytest.approx(high, abs=1e-12)
            assert row["gold_ci_low"] <= row["gold_accuracy"] <= row["gold_ci_high"]
        else:
            assert row["gold_ci_low"] is None and row["gold_ci_high"] is None and row["gold_accuracy"] is None
    assert report["bob"]["flag_reason"].startswith("gold accuracy 0%")
    assert report["carol"]["gold_ci_low"] == pytest.approx(0.0945, abs=1e-4)  # 1 of 2: 9.5%-90.5%
    assert report["carol"]["gold_ci_high"] == pytest.approx(0.9055, abs=1e-4)
    assert "id" not in report["alice"]


def test_unflag_shows_in_the_report_and_the_list_is_unchanged(played):
    store, _ = played
    store.unflag("bob")
    bob = next(r for r in store.annotator_report() if r["name"] == "bob")
    assert not bob["flagged"] and bob["flag_reason"] is None
    assert (bob["gold_answers"], bob["gold_correct"]) == (2, 0)  # the all-time record stays
    listed = store.list_annotators()
    assert [r["name"] for r in listed] == ["alice", "bob", "carol", "dave", "root"]
    assert "median_time_on_task_s" not in listed[0] and "id" not in listed[0]


def test_an_empty_store_and_a_batch_nobody_started(store):
    assert store.queue_progress() == [] and store.annotator_report() == []
    enqueue(store, "fresh", pairs(2), per_item=3)
    store.add_annotator("ann")
    (fresh,) = store.queue_progress()
    assert (fresh["items"], fresh["labels_wanted"], fresh["answered"], fresh["complete"], fresh["waiting"]) == (2, 6, 0, 0, 2)
    (ann,) = store.annotator_report()
    assert ann["median_time_on_task_s"] is None and ann["last_seen_at"] is None and ann["gold_ci_low"] is None


def test_the_wilson_interval_is_statsmodels_and_none_without_answers():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx(proportion_confint(5, 10, method="wilson"))


def test_a_lease_released_then_answered_late_and_a_live_lease_count_as_they_should(store_at, clock):
    with store_at(lease_s=10.0, clock=clock) as store:
        tasks = pairs(2)
        tasks["priority"] = [1.0, 0.0]
        enqueue(store, "b1", tasks, per_item=2)
        late, prompt, other = (store.authenticate(store.add_annotator(n)) for n in ("late", "prompt", "other"))
        slow = store.next_task(late)  # p0
        clock.advance(100.0)
        store.answer(prompt, store.next_task(prompt).task_id, "A>B")  # p0: the sweep released late's lease first
        assert store.queue_progress()[0]["in_flight"] == 0  # late's lease is no longer live
        store.answer(late, slow.task_id, "A>B")  # answered after its lease was released: still counts
        store.answer(other, store.next_task(other).task_id, "A>B")  # p1 (p0 has its two)
        assert store.next_task(late).prompt == "Prompt p1"  # p1: one answer and this live lease
        (b1,) = store.queue_progress()
        assert (b1["answered"], b1["in_flight"], b1["complete"], b1["waiting"]) == (3, 1, 1, 1)
        counted = rows(store, """SELECT count(*) FROM items i WHERE (SELECT count(*) FROM assignments a
                                 WHERE a.item_id = i.id AND a.status = 'answered') >= i.labels_wanted""")[0][0]
        assert counted == b1["complete"]
