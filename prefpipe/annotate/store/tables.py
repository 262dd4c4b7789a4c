"""The store's tables, written once with SQLAlchemy Core and rendered for SQLite or PostgreSQL.

Ids are BIGINT identities on PostgreSQL and SQLite's rowid on SQLite; times are seconds since the
epoch as double precision (PostgreSQL's REAL is single precision and would round them to minutes);
flags are 0/1 integers on both, so the SQL that reads them is the same. Partial indexes are the
same predicate on both dialects.
"""

from __future__ import annotations

import sqlalchemy as sa

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A row id: SQLite's INTEGER PRIMARY KEY is its rowid; PostgreSQL's BIGINT identity never runs out."""
Seconds = sa.Double()
Flag = sa.Integer()

metadata = sa.MetaData()


def _id() -> sa.Column:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)

annotators = sa.Table(
    "annotators", metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("role", sa.Text, sa.CheckConstraint("role IN ('annotator', 'expert', 'admin')"), nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("token_expires_at", Seconds),
    sa.Column("disabled", Flag, nullable=False, server_default=sa.text("0")),
    sa.Column("flagged", Flag, nullable=False, server_default=sa.text("0")),
    sa.Column("flag_reason", sa.Text),
    sa.Column("flagged_at", Seconds),
    sa.Column("flag_shown_after", sa.Integer),  # n_answered from which a flag is shown to them and pauses them
    sa.Column("n_served", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("n_answered", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("n_skipped", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("gold_window_answers", sa.Integer, nullable=False, server_default=sa.text("0")),  # since the last unflag
    sa.Column("gold_window_correct", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", Seconds, nullable=False),
)

batches = sa.Table(
    "batches", metadata,
    sa.Column("batch_id", sa.Text, primary_key=True),
    sa.Column("guideline_version", sa.Text, nullable=False),
    sa.Column("rubric", sa.Text, nullable=False),
    sa.Column("dimension_scale", sa.Text, nullable=False),
    sa.Column("updated_at", Seconds, nullable=False),
)

items = sa.Table(
    "items", metadata,
    _id(),
    sa.Column("batch_id", sa.Text, sa.ForeignKey("batches.batch_id"), nullable=False),
    sa.Column("pair_id", sa.Text, nullable=False),
    sa.Column("queue", sa.Text, sa.CheckConstraint("queue IN ('human', 'expert', 'gold')"), nullable=False),
    sa.Column("route", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("response_a", sa.Text, nullable=False),
    sa.Column("response_b", sa.Text, nullable=False),
    sa.Column("content_key", sa.Text, nullable=False),
    sa.Column("prompt_html", sa.Text),  # rendered once when queued (render.py); NULL: shown as plain text
    sa.Column("response_a_html", sa.Text),
    sa.Column("response_b_html", sa.Text),
    sa.Column("priority", Seconds, nullable=False),
    sa.Column("shuffle_key", sa.BigInteger),  # random: each annotator takes the item after their own secret point
    sa.Column("labels_wanted", sa.Integer, nullable=False),
    sa.Column("n_taken", sa.Integer, nullable=False, server_default=sa.text("0")),  # answers plus live leases
    sa.Column("gold_label", sa.Text),
    sa.Column("gold_scope", sa.Text, sa.CheckConstraint("gold_scope IN ('batch', 'global')")),
    sa.Column("gold_version", sa.Text),  # guideline version the gold key was written or last confirmed under
    sa.Column("gold_checked_by", sa.Text),  # the expert who last re-checked the key
    sa.Column("gold_checked_at", Seconds),
    sa.Column("enqueued_at", Seconds, nullable=False),
    sa.UniqueConstraint("batch_id", "pair_id", "queue"),
)
_open = sa.text("n_taken < labels_wanted")
sa.Index("items_open_shuffled", items.c.queue, items.c.priority.desc(), items.c.shuffle_key,
         sqlite_where=_open, postgresql_where=_open)
_gold = sa.text("queue = 'gold'")
sa.Index("items_gold", items.c.queue, sqlite_where=_gold, postgresql_where=_gold)

assignments = sa.Table(
    "assignments", metadata,
    _id(),
    sa.Column("task_id", sa.Text, nullable=False, unique=True),
    sa.Column("annotator_id", Id, sa.ForeignKey("annotators.id"), nullable=False),
    sa.Column("item_id", Id, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("content_key", sa.Text, nullable=False),
    sa.Column("batch_id", sa.Text, nullable=False),  # the batch the annotator was working on when served
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("swapped", Flag, nullable=False),  # 1 when the pair's B was shown on the left, as "A"
    sa.Column("guideline_version", sa.Text, nullable=False),  # the version shown with the task
    sa.Column("status", sa.Text, sa.CheckConstraint("status IN ('pending', 'expired', 'answered', 'skipped')"),
              nullable=False, server_default=sa.text("'pending'")),
    sa.Column("served_at", Seconds, nullable=False),
    sa.Column("answered_at", Seconds),
    sa.Column("label", sa.Text),  # in the pair's own order
    sa.Column("label_shown", sa.Text),  # as the annotator chose it
    sa.Column("dimensions", sa.Text),  # JSON, in the pair's own order
    sa.Column("skip_reason", sa.Text),
    sa.Column("gold_correct", sa.Integer),
    sa.UniqueConstraint("annotator_id", "content_key"),
)
_pending = sa.text("status = 'pending'")
sa.Index("assignments_pending", assignments.c.annotator_id, sqlite_where=_pending, postgresql_where=_pending)
sa.Index("assignments_lease", assignments.c.served_at, sqlite_where=_pending, postgresql_where=_pending)
sa.Index("assignments_item", assignments.c.item_id)
sa.Index("assignments_batch", assignments.c.batch_id, assignments.c.status)

sessions = sa.Table(
    "sessions", metadata,
    _id(),
    sa.Column("annotator_id", Id, sa.ForeignKey("annotators.id"), nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("expires_at", Seconds, nullable=False),
)
sa.Index("sessions_annotator", sessions.c.annotator_id)

COPY_ORDER = (meta, annotators, sessions, batches, items, assignments)
"""Every table, parents before children: the order a store is copied in (`prefpipe store migrate`)."""
