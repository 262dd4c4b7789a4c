"""What the admin page shows: each batch's queue progress, and each annotator's time on task and
last sighting, with the Wilson interval of their gold accuracy.

Plain functions over an open connection, called by the store's mixins inside their read
transaction (`QueueMixin.queue_progress`, `AnnotatorsMixin.annotator_report`); the same SQL on
SQLite and PostgreSQL. Built for a store of a million pairs and millions of answers:
- a batch's progress is counted by the database in three grouped queries for all batches: the
  items (one scan, with `n_taken`, the store's own count of answers plus live leases, less the
  live leases, for the answers each pair has), the answers by batch and status (a covering index)
  and the gold answers (from the few gold items);
- an annotator's median time on task needs every answer's time: they are streamed once, a chunk at
  a time, into numpy and grouped by pandas (SQLite has no percentile function, and its window
  functions sort millions of rows several times slower than this).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

GOLD_CONFIDENCE = 0.95
"""Confidence level of the interval shown around an annotator's gold accuracy."""
CHUNK_ROWS = 100_000
"""Answers read into numpy at a time, so the median's Python objects stay bounded."""

_BATCH_ITEMS = """
WITH live AS (SELECT item_id, count(*) AS leases FROM assignments WHERE status = 'pending' GROUP BY item_id)
SELECT b.batch_id, b.guideline_version, b.updated_at,
       count(i.id) FILTER (WHERE i.queue != 'gold'),
       COALESCE(sum(i.labels_wanted) FILTER (WHERE i.queue != 'gold'), 0),
       count(i.id) FILTER (WHERE i.queue != 'gold' AND i.n_taken - COALESCE(live.leases, 0) >= i.labels_wanted),
       count(i.id) FILTER (WHERE i.queue = 'gold')
FROM batches b
LEFT JOIN items i ON i.batch_id = b.batch_id
LEFT JOIN live ON live.item_id = i.id
GROUP BY b.batch_id, b.guideline_version, b.updated_at
ORDER BY b.batch_id
"""
"""A pair is complete when its answers (n_taken less its live leases) reach the labels it wants."""

_BATCH_TASKS = "SELECT batch_id, status, count(*) FROM assignments GROUP BY batch_id, status"
"""Every task served beside each batch by status: its own pairs' and the gold standing in for them."""

_BATCH_GOLD = """
SELECT a.batch_id, a.status, count(*), count(a.gold_correct), COALESCE(sum(a.gold_correct), 0)
FROM items i JOIN assignments a ON a.item_id = i.id
WHERE i.queue = 'gold'
GROUP BY a.batch_id, a.status
"""
"""The gold tasks among them, with the scored answers and how many were right."""

_ANSWER_TIMES = """
SELECT annotator_id, CASE WHEN status = 'answered' THEN answered_at - served_at END, COALESCE(answered_at, served_at)
FROM assignments
"""
"""Each task's annotator, its time on task (answers only) and the last moment it was acted on."""

_SIGN_INS = "SELECT annotator_id, max(created_at) FROM sessions GROUP BY annotator_id"


def batch_progress(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every batch's queue: its pairs (items of the human and expert queues), labels wanted and
    answered, skips, leases in flight, pairs complete (answered >= wanted) and waiting, its gold
    pairs, and the scored gold answers given beside its tasks (with how many were right)."""
    tasks = {(batch, status): int(n) for batch, status, n in conn.execute(sa.text(_BATCH_TASKS))}
    gold: dict[tuple[str, str], tuple[int, int, int]] = {
        (batch, status): (int(n), int(scored), int(right)) for batch, status, n, scored, right in conn.execute(sa.text(_BATCH_GOLD))}

    def own(batch: str, status: str) -> int:
        return tasks.get((batch, status), 0) - gold.get((batch, status), (0, 0, 0))[0]

    out = []
    for batch, version, updated_at, items, wanted, complete, gold_items in conn.execute(sa.text(_BATCH_ITEMS)):
        _, scored, right = gold.get((batch, "answered"), (0, 0, 0))
        out.append({
            "batch_id": batch,
            "guideline_version": version,
            "updated_at": float(updated_at),
            "items": int(items),
            "labels_wanted": int(wanted),
            "answered": own(batch, "answered"),
            "skipped": own(batch, "skipped"),
            "in_flight": own(batch, "pending"),
            "complete": int(complete),
            "waiting": int(items) - int(complete),
            "gold_items": int(gold_items),
            "gold_answers": scored,
            "gold_correct": right,
        })
    return out


def annotator_activity(conn: sa.Connection) -> dict[int, tuple[float | None, float | None]]:
    """(median seconds from serving to answering, last seen) of each annotator id the store has
    seen act; last seen is the latest sign-in of a live session, task served, answer or skip (a
    session signed out of is deleted, and its sign-in with it). Either is None when there is
    nothing to go by."""
    import numpy as np
    import pandas as pd

    cursor = conn.connection.driver_connection.cursor()  # plain tuples: SQLAlchemy rows cost far more per row
    try:
        cursor.execute(_ANSWER_TIMES)
        chunks = []
        while chunk := cursor.fetchmany(CHUNK_ROWS):
            chunks.append(np.array(chunk, dtype=float))  # NULL becomes NaN
    finally:
        cursor.close()
    times = pd.DataFrame(np.concatenate(chunks) if chunks else np.empty((0, 3)), columns=["who", "seconds", "acted_at"])
    signed_in = pd.DataFrame([tuple(row) for row in conn.execute(sa.text(_SIGN_INS))], columns=["who", "acted_at"], dtype=float)
    medians = times.groupby("who")["seconds"].median()
    seen = pd.concat([times[["who", "acted_at"]], signed_in]).groupby("who")["acted_at"].max()
    return {int(who): (_value(medians.get(who)), _value(seen.get(who))) for who in seen.index.union(medians.index)}


def _value(x: float | None) -> float | None:
    return None if x is None or x != x else float(x)


def wilson_interval(correct: int, answers: int, confidence: float = GOLD_CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of correct/answers (scipy's, as the spot-check estimate uses); None
    with no answers."""
    if answers == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(answers)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
