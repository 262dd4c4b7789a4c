"""Where the annotation store is, from PREFPIPE_ANNOTATION_STORE, and the SQLAlchemy engine for it.

- `sqlite:///ABS/PATH` or a plain path: one SQLite file in WAL mode (the default,
  `data/annotations.sqlite3`), for one machine;
- `postgresql://USER[:PASS]@HOST:PORT/DB`: PostgreSQL through psycopg 3, for a team whose app
  replicas, CLI and pipeline run on several machines. The password may be in the URL (from the
  environment only) or in PGPASSWORD, which libpq reads; no message prefpipe prints contains it.

The SQL the store runs is written once (SQLAlchemy Core `text()` and the tables in tables.py);
what differs by dialect is here: SQLite's pragmas and `BEGIN IMMEDIATE` (one writer at a time,
so a read-then-write never races), and PostgreSQL's connection pool with a liveness check, so a
restarted server costs one failed request, not a dead app.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from prefpipe.core import settings
from prefpipe.errors import PrefpipeError

STORE_ENV = "PREFPIPE_ANNOTATION_STORE"
BEGIN_OPTION = "prefpipe_begin"
"""Execution option naming the SQLite BEGIN to emit: IMMEDIATE for writes, DEFERRED for reads."""


class StoreConfigError(PrefpipeError):
    """PREFPIPE_ANNOTATION_STORE names no store prefpipe can open (the message says why, in one line)."""


@dataclass(frozen=True)
class StoreLocation:
    url: sa.URL
    """The SQLAlchemy URL (with the password, if one was given: never print it)."""
    path: Path | None
    """The SQLite file; None for PostgreSQL."""
    display: str
    """What messages show: the file, or postgresql://USER@HOST:PORT/DB without the password."""

    @property
    def is_postgresql(self) -> bool:
        return self.path is None


def parse_location(spec: str | Path) -> StoreLocation:
    """A StoreLocation from a path, `sqlite:///PATH` or `postgresql://USER@HOST:PORT/DB`."""
    text = str(spec)
    if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        try:
            url = sa.make_url(text)
        except sa.exc.ArgumentError:
            raise StoreConfigError(f"{STORE_ENV}: expected postgresql://USER@HOST:PORT/DB") from None
        if not url.host or not url.database:
            raise StoreConfigError(f"{STORE_ENV}: expected postgresql://USER@HOST:PORT/DB (host and database are needed)")
        url = url.set(drivername="postgresql+psycopg")
        shown = f"postgresql://{url.username or ''}@{url.host}:{url.port or 5432}/{url.database}"
        return StoreLocation(url, None, shown)
    if "://" in text and not text.startswith("sqlite:///"):
        raise StoreConfigError(f"{STORE_ENV}: expected sqlite:///ABS/PATH or postgresql://USER@HOST:PORT/DB, "
                               f"got a {text.split('://', 1)[0]}:// URL")
    if text.startswith("sqlite://"):  # sqlite:///ABS/PATH, like duckdb:///ABS/PATH for the warehouse
        text = "/" + text[len("sqlite://"):].lstrip("/")
    path = Path(text).expanduser().resolve()
    return StoreLocation(sa.URL.create("sqlite", database=str(path)), path, str(path))


def configured_location() -> StoreLocation:
    """PREFPIPE_ANNOTATION_STORE when set, else the SQLite file under the data folder."""
    return parse_location(os.environ.get(STORE_ENV) or settings.annotation_store_path())


def create_store_engine(location: StoreLocation) -> sa.Engine:
    if location.is_postgresql:
        return sa.create_engine(
            location.url, pool_pre_ping=True, pool_size=4, max_overflow=4, pool_recycle=3600,
            connect_args={"connect_timeout": 10, "application_name": "prefpipe-annotation-store"},
        )
    engine = sa.create_engine(location.url, poolclass=StaticPool,
                              connect_args={"check_same_thread": False, "timeout": 30.0})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
    dbapi_connection.isolation_level = None  # transactions are ours (BEGIN IMMEDIATE), not the driver's
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "busy_timeout = 30000"):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(BEGIN_OPTION, 'DEFERRED')}")


def unreachable_message(location: StoreLocation, exc: BaseException) -> str:
    """One line naming the variable and the address, never the password."""
    said = str(getattr(exc, "orig", None) or exc).strip()
    reason = said.splitlines()[0] if said else type(exc).__name__
    if location.url.password:
        reason = reason.replace(str(location.url.password), "***")
    return f"{STORE_ENV}: cannot reach the annotation store {location.display}: {reason}"
