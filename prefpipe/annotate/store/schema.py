"""The store's file: tables, schema version, in-place migration, and the open connection.

`StoreBase` opens (and creates) the SQLite file with its pragmas, applies the DDL and migrates an
older file, and owns the lock and the transactions (`_write`, `group`, `_read`) that every other
part of `AnnotationStore` goes through. The concern mixins build on it and never touch the
connection any other way.

The file holds token hashes, gold keys and the gold-slot secret, so it is private to its owner:
created 0600 (SQLite gives its -wal and -shm files the database file's mode) and tightened to 0600
when an older, looser file is opened.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from prefpipe.core import settings
from prefpipe.annotate.gold import GoldPolicy

SCHEMA_VERSION = 3
TOKEN_TTL_S = 30 * 24 * 3600.0
"""How long an annotator's token works after it is issued (or after a store is upgraded to v3)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS annotators (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('annotator', 'expert', 'admin')),
        token_hash TEXT NOT NULL UNIQUE,
        token_expires_at REAL,
        disabled INTEGER NOT NULL DEFAULT 0,
        flagged INTEGER NOT NULL DEFAULT 0,
        flag_reason TEXT,
        flagged_at REAL,
        flag_shown_after INTEGER,  -- n_answered from which a flag is shown to them and pauses them
        n_served INTEGER NOT NULL DEFAULT 0,
        n_answered INTEGER NOT NULL DEFAULT 0,
        n_skipped INTEGER NOT NULL DEFAULT 0,
        gold_window_answers INTEGER NOT NULL DEFAULT 0,  -- since the last unflag
        gold_window_correct INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id TEXT PRIMARY KEY,
        guideline_version TEXT NOT NULL,
        rubric TEXT NOT NULL,
        dimension_scale TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL REFERENCES batches (batch_id),
        pair_id TEXT NOT NULL,
        queue TEXT NOT NULL CHECK (queue IN ('human', 'expert', 'gold')),
        route TEXT NOT NULL,
        prompt TEXT NOT NULL,
        response_a TEXT NOT NULL,
        response_b TEXT NOT NULL,
        content_key TEXT NOT NULL,
        prompt_html TEXT,  -- rendered once when queued (render.py); NULL: shown as plain text
        response_a_html TEXT,
        response_b_html TEXT,
        priority REAL NOT NULL,
        shuffle_key INTEGER,  -- random: each annotator takes the item after their own secret point
        labels_wanted INTEGER NOT NULL,
        n_taken INTEGER NOT NULL DEFAULT 0,  -- answers plus live leases
        gold_label TEXT,
        gold_scope TEXT CHECK (gold_scope IN ('batch', 'global')),  -- gold served with its batch only, or any
        gold_version TEXT,  -- guideline version the gold key was written or last confirmed under
        gold_checked_by TEXT,  -- the expert who last re-checked the key
        gold_checked_at REAL,
        enqueued_at REAL NOT NULL,
        UNIQUE (batch_id, pair_id, queue)
    )""",
    """CREATE INDEX IF NOT EXISTS items_open_shuffled ON items (queue, priority DESC, shuffle_key)
        WHERE n_taken < labels_wanted""",
    """CREATE INDEX IF NOT EXISTS items_gold ON items (queue) WHERE queue = 'gold'""",
    """CREATE TABLE IF NOT EXISTS assignments (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        annotator_id INTEGER NOT NULL REFERENCES annotators (id),
        item_id INTEGER NOT NULL REFERENCES items (id),
        content_key TEXT NOT NULL,
        batch_id TEXT NOT NULL,  -- the batch the annotator was working on when served
        role TEXT NOT NULL,
        swapped INTEGER NOT NULL,  -- 1 when the pair's B was shown on the left, as "A"
        guideline_version TEXT NOT NULL,  -- the version shown with the task
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'expired', 'answered', 'skipped')),
        served_at REAL NOT NULL,
        answered_at REAL,
        label TEXT,  -- in the pair's own order
        label_shown TEXT,  -- as the annotator chose it
        dimensions TEXT,  -- JSON, in the pair's own order
        skip_reason TEXT,
        gold_correct INTEGER,
        UNIQUE (annotator_id, content_key)
    )""",
    """CREATE INDEX IF NOT EXISTS assignments_pending ON assignments (annotator_id) WHERE status = 'pending'""",
    """CREATE INDEX IF NOT EXISTS assignments_lease ON assignments (served_at) WHERE status = 'pending'""",
    """CREATE INDEX IF NOT EXISTS assignments_item ON assignments (item_id)""",
    """CREATE INDEX IF NOT EXISTS assignments_batch ON assignments (batch_id, status)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id INTEGER PRIMARY KEY,
        annotator_id INTEGER NOT NULL REFERENCES annotators (id),
        token_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS sessions_annotator ON sessions (annotator_id)""",
)

_ADDED_COLUMNS = {  # by schema version 2 and 3, added in place to an older file
    "items": (("gold_version", "TEXT"), ("gold_checked_by", "TEXT"), ("gold_checked_at", "REAL"),
              ("prompt_html", "TEXT"), ("response_a_html", "TEXT"), ("response_b_html", "TEXT"),
              ("shuffle_key", "INTEGER"), ("gold_scope", "TEXT CHECK (gold_scope IN ('batch', 'global'))")),
    "annotators": (("token_expires_at", "REAL"), ("flag_shown_after", "INTEGER")),
}


def _migrate(conn: sqlite3.Connection, now: float) -> None:
    """Bring a store written by an older prefpipe up to SCHEMA_VERSION in place (nothing is lost);
    runs before the DDL, whose indexes need the new columns.

    Version 1 had no gold key versions: each key gets its batch's guideline version (what it was
    loaded under) and answers already scored keep their score. Version 2 had tokens that never
    expired, gold served to every batch, no stored HTML and one task order for everyone: its
    tokens keep working for TOKEN_TTL_S from the upgrade, its gold stays global (as it was loaded;
    loading it again scopes it), its pairs show as plain text until their batch is queued again
    and every item gets its random shuffle key."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone() is None:
        return  # a new file
    for table, added in _ADDED_COLUMNS.items():
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in added:
            if name not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    conn.execute(
        """UPDATE items SET gold_version = (SELECT guideline_version FROM batches b WHERE b.batch_id = items.batch_id)
           WHERE queue = 'gold' AND gold_version IS NULL"""
    )
    conn.execute("UPDATE items SET gold_scope = 'global' WHERE queue = 'gold' AND gold_scope IS NULL")
    conn.execute("UPDATE annotators SET token_expires_at = ? WHERE token_expires_at IS NULL", (now + TOKEN_TTL_S,))
    unshuffled = [row[0] for row in conn.execute("SELECT id FROM items WHERE shuffle_key IS NULL")]
    conn.executemany("UPDATE items SET shuffle_key = ? WHERE id = ?", [(new_shuffle_key(), i) for i in unshuffled])
    conn.execute("DROP INDEX IF EXISTS items_open")  # version 2's order: the same for everyone


def new_shuffle_key() -> int:
    """An item's place in the random order annotators' secret points fall into (63 bits)."""
    return secrets.randbits(63)


def _private(path: Path) -> None:
    """Create the store file 0600, or tighten an older, looser one and its WAL files (ours only)."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if part.stat().st_mode & 0o077:
                part.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:  # another user's file: leave its mode to them
            continue


class StoreBase:
    """The open store file: connection, pragmas, lock and transactions (see the package docstring)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        gold_policy: GoldPolicy | None = None,
        lease_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else settings.annotation_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.gold_policy = gold_policy or GoldPolicy()
        self.lease_s = float(lease_s)
        self._clock = clock
        self._lock = threading.RLock()
        self._last_sweep = float("-inf")
        self._in_group = False
        _private(self.path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA busy_timeout = 30000")
        with self._write() as conn:
            _migrate(conn, self._clock())
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('gold_secret', ?)", (secrets.token_bytes(32),))
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            self._gold_secret = bytes(conn.execute("SELECT value FROM meta WHERE key = 'gold_secret'").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, rolled back whole on any error.

        Inside `group()` it is a savepoint instead: the operation is undone alone on error and
        committed with the group.
        """
        with self._lock:
            if self._in_group:
                self._conn.execute("SAVEPOINT op")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK TO op")
                    self._conn.execute("RELEASE op")
                    raise
                self._conn.execute("RELEASE op")
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def group(self, *, durable: bool = True) -> Iterator[None]:
        """Run several operations in one transaction with one commit (one fsync): group commit.

        Each operation inside is isolated by a savepoint, so one that fails leaves the others
        alone. Nothing is durable, and no caller should be told it is, until the block exits.
        `durable=False` commits without waiting for the disk (WAL, synchronous=NORMAL): safe
        against a crash of the app, not of the machine. The app uses it only for groups that
        serve tasks and read progress, never for one that stores an answer; the next durable
        commit makes everything before it durable too.
        """
        with self._lock:
            if self._in_group:
                raise RuntimeError("AnnotationStore.group() does not nest")
            if not durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._in_group = True
                try:
                    yield
                except BaseException:
                    self._in_group = False
                    self._conn.execute("ROLLBACK")
                    raise
                self._in_group = False
                self._conn.execute("COMMIT")
            finally:
                if not durable:
                    self._conn.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads spanning several statements."""
        with self._lock:
            if self._in_group:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")
