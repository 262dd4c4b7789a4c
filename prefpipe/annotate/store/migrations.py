"""Versioned migrations of the annotation store: every store knows its schema version (the `meta`
row `schema_version`) and is brought up to SCHEMA_VERSION in place when it is opened.

How a schema change is made (the documented equivalent of an Alembic revision, kept in code so a
laptop user's store upgrades itself on open with no extra command):
1. change tables.py (new tables and indexes are created by `create_all` on open);
2. bump SCHEMA_VERSION and add `STEPS[new_version] = function(conn, now)` doing what `create_all`
   cannot (new columns on existing tables, back-filled values) in SQL both dialects accept;
3. add a test that opens a store written at the old version (a frozen dump) and checks its data.
Steps run in order inside the transaction that opens the store (on PostgreSQL under an advisory
lock, so replicas starting together migrate once), and the version is recorded in the same
transaction: a failed migration leaves the store as it was.

Versions 1 and 2 were SQLite-only and recorded no reliable version; `_upgrade_sqlite_v1_v2`
recognises them by their columns. PostgreSQL stores begin at version 3.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import sqlalchemy as sa

SCHEMA_VERSION = 4
TOKEN_TTL_S = 30 * 24 * 3600.0
"""How long an annotator's token works after it is issued (or after a store is upgraded to v3)."""


def _v4_paragraphs_mark(conn: sa.Connection, now: float) -> None:
    """Version 4 may store render.PARAGRAPHS_MARK in place of a text's HTML. Nothing stored before
    changes (its HTML stays as it was); the new version makes older code refuse the store rather
    than show the mark."""


STEPS: dict[int, Callable[[sa.Connection, float], None]] = {4: _v4_paragraphs_mark}
"""Migrations after version 3, by the version they bring the store to."""

_ADDED_COLUMNS = {  # by schema version 2 and 3, added in place to an older SQLite file
    "items": (("gold_version", "TEXT"), ("gold_checked_by", "TEXT"), ("gold_checked_at", "REAL"),
              ("prompt_html", "TEXT"), ("response_a_html", "TEXT"), ("response_b_html", "TEXT"),
              ("shuffle_key", "INTEGER"), ("gold_scope", "TEXT CHECK (gold_scope IN ('batch', 'global'))")),
    "annotators": (("token_expires_at", "REAL"), ("flag_shown_after", "INTEGER")),
}


def new_shuffle_key() -> int:
    """An item's place in the random order annotators' secret points fall into (63 bits)."""
    return secrets.randbits(63)


def stored_version(conn: sa.Connection) -> int | None:
    """The store's schema version; None for a new store (no tables yet)."""
    names = set(sa.inspect(conn).get_table_names())
    if "items" not in names:
        return None
    row = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).fetchone() if "meta" in names else None
    return int(bytes(row[0]).decode() if isinstance(row[0], (bytes, memoryview)) else row[0]) if row else 1


def upgrade(conn: sa.Connection, now: float) -> int | None:
    """Bring an existing store up to SCHEMA_VERSION before `create_all` (whose indexes need the new
    columns); returns the version it found (None: a new store)."""
    found = stored_version(conn)
    if found is None:
        return None
    if found > SCHEMA_VERSION:
        raise RuntimeError(f"the annotation store is at schema version {found}, newer than this prefpipe "
                           f"({SCHEMA_VERSION}): upgrade prefpipe")
    if conn.dialect.name == "sqlite":
        _upgrade_sqlite_v1_v2(conn, now)
    for version in range(max(found, 3) + 1, SCHEMA_VERSION + 1):
        STEPS[version](conn, now)
    return found


def _upgrade_sqlite_v1_v2(conn: sa.Connection, now: float) -> None:
    """Version 1 had no gold key versions: each key gets its batch's guideline version (what it was
    loaded under) and answers already scored keep their score. Version 2 had tokens that never
    expired, gold served to every batch, no stored HTML and one task order for everyone: its
    tokens keep working for TOKEN_TTL_S from the upgrade, its gold stays global (as it was loaded;
    loading it again scopes it), its pairs show as plain text until their batch is queued again
    and every item gets its random shuffle key."""
    for table, added in _ADDED_COLUMNS.items():
        columns = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
        for name, kind in added:
            if name not in columns:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    conn.execute(sa.text(
        """UPDATE items SET gold_version = (SELECT guideline_version FROM batches b WHERE b.batch_id = items.batch_id)
           WHERE queue = 'gold' AND gold_version IS NULL"""))
    conn.execute(sa.text("UPDATE items SET gold_scope = 'global' WHERE queue = 'gold' AND gold_scope IS NULL"))
    conn.execute(sa.text("UPDATE annotators SET token_expires_at = :t WHERE token_expires_at IS NULL"), {"t": now + TOKEN_TTL_S})
    unshuffled = [row[0] for row in conn.execute(sa.text("SELECT id FROM items WHERE shuffle_key IS NULL"))]
    if unshuffled:
        conn.execute(sa.text("UPDATE items SET shuffle_key = :k WHERE id = :id"),
                     [{"k": new_shuffle_key(), "id": i} for i in unshuffled])
    conn.exec_driver_sql("DROP INDEX IF EXISTS items_open")  # version 2's order: the same for everyone
