"""The store's connection: opening (and creating or upgrading) it, the lock and the transactions.

`StoreBase` opens the store named by PREFPIPE_ANNOTATION_STORE (location.py): a SQLite file or a
PostgreSQL database, creates its tables (tables.py) and migrates an older one (migrations.py),
and owns the lock and the transactions (`_write`, `group`, `_read`) that every other part of
`AnnotationStore` goes through. The concern mixins build on it and never touch the connection any
other way; their SQL is the same on both dialects but for the few fragments `StoreBase` supplies
(`_for_update`, `_skip_locked`).

Concurrency: on SQLite every write transaction is `BEGIN IMMEDIATE`, so writers take turns and a
read-then-write cannot race. On PostgreSQL many processes write at once under READ COMMITTED;
the mixins lock what they read before writing it (`SELECT ... FOR UPDATE`), in one order
(annotator, then assignment, then item), and pick open items with `FOR UPDATE SKIP LOCKED`, so two
replicas never serve one item beyond its overlap and never wait on each other's picks.

A SQLite file holds token hashes, gold keys and the gold-slot secret, so it is private to its
owner: created 0600 (SQLite gives its -wal and -shm files the database file's mode) and tightened
to 0600 when an older, looser file is opened. A PostgreSQL store's privacy is its database's roles.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import sqlalchemy as sa

from prefpipe.annotate.errors import StoreUnavailable
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.store import migrations, tables
from prefpipe.annotate.store.location import (
    BEGIN_OPTION,
    StoreLocation,
    configured_location,
    create_store_engine,
    parse_location,
    unreachable_message,
)
from prefpipe.annotate.store.migrations import SCHEMA_VERSION, TOKEN_TTL_S, new_shuffle_key

__all__ = ["SCHEMA_VERSION", "TOKEN_TTL_S", "StoreBase", "new_shuffle_key"]

_SETUP_LOCK = 0x70726566  # the advisory lock PostgreSQL replicas take to create or migrate the store once


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
    """The open store: engine, lock and transactions (see the module docstring)."""

    def __init__(
        self,
        location: str | Path | StoreLocation | None = None,
        *,
        gold_policy: GoldPolicy | None = None,
        lease_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if location is None:
            location = configured_location()
        self.location = location if isinstance(location, StoreLocation) else parse_location(location)
        self.path = self.location.path
        """The SQLite file; None on PostgreSQL."""
        self.postgresql = self.location.is_postgresql
        self.gold_policy = gold_policy or GoldPolicy()
        self.lease_s = float(lease_s)
        self._clock = clock
        self._lock = threading.RLock()
        self._last_sweep = float("-inf")
        self._group: sa.Connection | None = None
        self._for_update = " FOR UPDATE" if self.postgresql else ""
        """Appended to a SELECT of rows about to be written: locks them on PostgreSQL (SQLite's
        BEGIN IMMEDIATE already holds the only write lock)."""
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if self.postgresql else ""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _private(self.path)
        self.engine = create_store_engine(self.location)
        try:
            self._set_up()
        except BaseException:
            self.engine.dispose()
            raise

    def _set_up(self) -> None:
        """Create or migrate the tables, record the version, and read (or make) the gold secret."""
        with self._write() as conn:
            if self.postgresql:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SETUP_LOCK})
            migrations.upgrade(conn, self._clock())
            tables.metadata.create_all(conn)
            for table in tables.metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('gold_secret', :v) ON CONFLICT (key) DO NOTHING"),
                         {"v": secrets.token_bytes(32)})
            conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', :v) "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                         {"v": str(SCHEMA_VERSION).encode()})
            self._gold_secret = bytes(conn.execute(sa.text("SELECT value FROM meta WHERE key = 'gold_secret'")).scalar_one())

    def _lock_annotator(self, conn: sa.Connection, annotator_id: int) -> None:
        """Take the annotator's row first (PostgreSQL), so one annotator's requests take turns and
        every transaction locks annotator, then assignment, then item: one order, no deadlock."""
        if self.postgresql:
            conn.execute(sa.text("SELECT 1 FROM annotators WHERE id = :annotator FOR UPDATE"), {"annotator": annotator_id})

    @property
    def display(self) -> str:
        """Where the store is, for messages: the file, or the database without its password."""
        return self.location.display

    @property
    def group_commit(self) -> bool:
        """Whether the app should run many requests in one transaction: yes for SQLite (one writer,
        one fsync per group); no for PostgreSQL, which commits concurrent transactions together
        itself and where one long transaction would hold row locks other replicas wait on."""
        return not self.postgresql

    def close(self) -> None:
        with self._lock:
            self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """A lost or refused connection, a deadlock or a busy SQLite file becomes StoreUnavailable:
        one line naming the variable and the address (never the password), nothing stored."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            transient = self.postgresql or any(word in str(exc.orig) for word in ("locked", "busy", "unable to open"))
            if not transient:
                raise
            raise StoreUnavailable(unreachable_message(self.location, exc)) from None
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            raise StoreUnavailable(unreachable_message(self.location, exc)) from None
        except sa.exc.PendingRollbackError as exc:  # the connection was lost inside this transaction
            raise StoreUnavailable(unreachable_message(self.location, exc)) from None

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One short write transaction, rolled back whole on any error.

        Inside `group()` it is a savepoint instead: the operation is undone alone on error and
        committed with the group.
        """
        with self._lock:
            if self._group is not None:
                with self._unavailable_as_error(), self._group.begin_nested():
                    yield self._group
                return
            with self._unavailable_as_error(), self.engine.connect() as conn:
                conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn

    @contextmanager
    def group(self, *, durable: bool = True) -> Iterator[None]:
        """Run several operations in one transaction with one commit (one fsync): group commit.

        Each operation inside is isolated by a savepoint, so one that fails leaves the others
        alone. Nothing is durable, and no caller should be told it is, until the block exits.
        `durable=False` commits without waiting for the disk (SQLite: synchronous=NORMAL in WAL):
        safe against a crash of the app, not of the machine. The app uses it only for groups that
        serve tasks and read progress, never for one that stores an answer; the next durable
        commit makes everything before it durable too. On PostgreSQL every commit is durable: a
        server restarted in a hurry (or crashed) would otherwise forget tasks it had served, and
        the annotator's answer to one would be refused.
        """
        with self._lock:
            if self._group is not None:
                raise RuntimeError("AnnotationStore.group() does not nest")
            with self._unavailable_as_error(), self.engine.connect() as conn:
                conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                relaxed = not durable and not self.postgresql
                if relaxed:
                    conn.connection.driver_connection.execute("PRAGMA synchronous = NORMAL")
                try:
                    with conn.begin():
                        self._group = conn
                        try:
                            yield
                        finally:
                            self._group = None
                finally:
                    if relaxed:
                        conn.connection.driver_connection.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A consistent snapshot for reads spanning several statements."""
        with self._lock:
            if self._group is not None:
                yield self._group
                return
            with self._unavailable_as_error(), self.engine.connect() as conn:
                if self.postgresql:
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn

