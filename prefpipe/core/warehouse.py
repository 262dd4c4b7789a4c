"""Opening and reading the warehouse (a DuckDB file, or a DuckLake lakehouse: see
prefpipe.core.warehouse_target): short connections that wait out a writer's lock, and the rows of
a table (or one batch's) as frames with the schema's columns when a table is missing.

The I/O manager that writes it is a Dagster resource (prefpipe.defs.warehouse_io); everything
outside a run's own inputs and outputs reads through here (CLI commands, checks, reports).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from typing import Any
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from prefpipe.core import schemas, settings
from prefpipe.core.warehouse_target import LakehouseNotCreated, WarehouseTarget, configured_target, open_lakehouse, parse_target
from prefpipe.errors import PrefpipeError


SCHEMA = settings.WAREHOUSE_SCHEMA


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


LOCK_WAIT_ENV = "PREFPIPE_WAREHOUSE_LOCK_WAIT_S"
DEFAULT_LOCK_WAIT_S = 120.0
"""Another process may hold the warehouse for a moment (a run of another batch writing, a reader):
prefpipe waits for it this long (default 2 minutes) before failing with WarehouseLocked."""


class WarehouseLocked(PrefpipeError):
    """Another process held the DuckDB warehouse for longer than prefpipe waits."""


def lock_wait_s() -> float:
    raw = os.environ.get(LOCK_WAIT_ENV)
    return float(raw) if raw else DEFAULT_LOCK_WAIT_S


def target(database: str | Path | None = None) -> WarehouseTarget:
    """The warehouse `database` names, else the configured one (PREFPIPE_WAREHOUSE, else data/warehouse.duckdb)."""
    return parse_target(database) if database else configured_target(settings.warehouse_path())


def _connect(where: WarehouseTarget, *, read_only: bool, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Connect, waiting out another process's lock with backoff; past the wait, say who holds it."""
    if where.is_lakehouse:
        return open_lakehouse(where, read_only=read_only)  # many writers: no file lock to wait for
    database = str(where.path)
    wait = lock_wait_s()
    attempt = retry(retry=retry_if_exception_type(duckdb.IOException), wait=wait_exponential_jitter(multiplier=0.1, max=5),
                    stop=stop_after_delay(wait), reraise=True)
    try:
        return attempt(duckdb.connect)(database=database, read_only=read_only, config=config or {})
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        holder = re.search(r"PID (\d+)", str(exc))
        who = f"process {holder.group(1)}" if holder else "another process"
        raise WarehouseLocked(
            f"{database}: the warehouse is held by {who} and was not released within {wait:.0f} s "
            f"({'reading' if read_only else 'writing'} needs it{'' if read_only else ' alone'}). A DuckDB file takes one writer, "
            "and a reader with the file open blocks the writer: close other DuckDB sessions on it (read with `prefpipe` "
            f"commands, which wait, or copy the file), or wait longer with {LOCK_WAIT_ENV}."
        ) from exc


def connect_for_write(database: str | Path | None, config: dict) -> duckdb.DuckDBPyConnection:
    """A writing connection to the warehouse `database` names (the I/O manager's)."""
    return _connect(target(database), read_only=False, config=config)


@contextmanager
def read_only(database: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A short read-only connection to the warehouse, or None when there is no warehouse yet.

    A run may hold DuckDB's write lock for a moment: wait for it (lock_wait_s) instead of failing.
    Every reader outside the I/O manager (CLI commands, checks, assets reading other batches) uses it."""
    where = target(database)
    if not where.exists():
        yield None
        return
    try:
        con = _connect(where, read_only=True)
    except LakehouseNotCreated:
        yield None
        return
    try:
        yield con
    finally:
        con.close()


def present_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables the warehouse holds (a table is created by its asset's first run)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_catalog = current_database()", [SCHEMA]).fetchall()
    return {r[0] for r in rows}


_TEXT = (pa.string(), pa.large_string(), pa.string_view())


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """A frame whose text columns stay in Arrow (pandas "string" backed by pyarrow: no Python str per
    value, one buffer per column) and whose other columns are what DuckDB's own conversion gives
    (nullable Int64 and boolean where there are nulls): a million responses load without a copy."""
    text = [name for name, field in zip(table.column_names, table.schema) if field.type in _TEXT]
    others = [n for n in table.column_names if n not in text]
    frame = duckdb.from_arrow(table.select(others)).df() if others else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for name in text:  # pandas keeps large_string as it is (fetch_frame asks DuckDB for it) and casts the rest
        frame[name] = pd.Series(pd.arrays.ArrowStringArray(table.column(name)), index=frame.index)
    return frame[table.column_names]


def fetch_frame(con, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """A query's rows as an arrow_frame. DuckDB hands over large_string buffers (pandas' Arrow
    strings are large_string: a plain string column would be copied once more to become one)."""
    con.execute("SET arrow_large_buffer_size = true")
    return arrow_frame(con.execute(sql, params or []).arrow().read_all())


def read_tables(tables: Sequence[str], *, batch_id: str | None = None, database: str | Path | None = None,
                columns: Sequence[str] | None = None, text_in_arrow: bool = False) -> dict[str, pd.DataFrame]:
    """Rows of several warehouse tables (optionally one batch's, optionally only some columns) in one
    short read-only connection; a table not written yet, or no warehouse at all, reads as an empty
    frame with its schema's columns. Text comes as Python objects (None for null), or with
    `text_in_arrow` as an arrow_frame's (pd.NA for null), for bulk work on big tables."""
    out = {table: schemas.empty({"batch_id": "string", **schemas.TABLES[table]}) for table in tables}
    if columns is not None:
        out = {table: frame[list(columns)] for table, frame in out.items()}
    with read_only(database) as con:
        if con is None:
            return out
        present = present_tables(con)
        where, params = ("WHERE batch_id = ?", [batch_id]) if batch_id is not None else ("", [])
        for table in tables:
            if table in present:
                selected = ", ".join(quote(c) for c in columns) if columns is not None else "*"
                sql = f"SELECT {selected} FROM {SCHEMA}.{quote(table)} {where}"
                out[table] = fetch_frame(con, sql, params) if text_in_arrow else con.execute(sql, params).fetchdf()
    return out


def read_chunks(table: str, *, batch_id: str, database: str | Path | None = None, columns: Sequence[str] | None = None,
                rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """One batch's rows of a table, `rows` at a time in the table's order, as arrow_frames (no
    batch_id column): a stage that works prompt by prompt never holds a million prompts' texts.
    Nothing is yielded when the table or the warehouse is not there yet."""
    with read_only(database) as con:
        if con is None or table not in present_tables(con):
            return
        names = [c for c in (columns or schemas.TABLES[table]) if c != "batch_id"]
        con.execute("SET arrow_large_buffer_size = true")
        sql = f"SELECT {', '.join(quote(c) for c in names)} FROM {SCHEMA}.{quote(table)} WHERE batch_id = ?"
        reader = con.execute(sql, [batch_id]).to_arrow_reader(rows)
        for batch in reader:
            yield arrow_frame(pa.Table.from_batches([batch]))


def read_table(table: str, *, batch_id: str | None = None, database: str | Path | None = None) -> pd.DataFrame:
    """Read one warehouse table (optionally one batch) in a short read-only connection."""
    return read_tables((table,), batch_id=batch_id, database=database)[table]


def row_counts(batch_ids: list[str], *, database: str | Path | None = None) -> pd.DataFrame:
    """Rows per warehouse table for the given batches (a table x batch grid)."""
    rows = []
    with read_only(database) as con:
        if con is None:
            return pd.DataFrame()
        present = present_tables(con)
        for table in schemas.TABLES:
            if table not in present or table == "guidelines":
                continue
            got = dict(con.execute(f"SELECT batch_id, count(*) FROM {SCHEMA}.{quote(table)} GROUP BY batch_id").fetchall())
            rows.append({"table": table, **{b: int(got.get(b, 0)) for b in batch_ids}})
    return pd.DataFrame(rows).set_index("table") if rows else pd.DataFrame()
