"""The DuckDB warehouse I/O manager: Dagster's DuckDB pandas I/O manager, made atomic.

The stock manager deletes a partition's rows and inserts the new ones in two autocommitted
statements, skips the write (and so never creates the table) for an empty frame, and inserts by
column position. Here the delete and insert of one partition are one transaction (a failed write
leaves the batch's previous rows in place), an empty frame still creates its table so downstream
stages can read "no rows", columns are inserted by name, and a column added in a newer prefpipe is
added to an existing table instead of failing. A table not written yet reads as an empty frame
with the columns of prefpipe.schemas.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from dagster import InputContext, OutputContext
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential_jitter
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_duckdb_pandas.duckdb_pandas_type_handler import DuckDBPandasTypeHandler

from prefpipe import schemas, settings


SCHEMA = settings.WAREHOUSE_SCHEMA


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _AtomicDuckDbClient(DuckDbClient):
    """Leaves the delete to the type handler, which does it inside the write's transaction, and
    closes the connection even when the write fails (the stock client leaks it, holding the lock)."""

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        return None

    @staticmethod
    @contextmanager
    def connect(context, table_slice):
        config = {"custom_user_agent": "prefpipe", **context.resource_config["connection_config"]}
        conn = _connect_with_retry(context.resource_config["database"], config)
        try:
            yield conn
        finally:
            conn.close()


_wait_for_lock = retry(
    retry=retry_if_exception_type(duckdb.IOException),
    wait=wait_exponential_jitter(multiplier=0.1, max=5),
    stop=stop_after_delay(120),
    reraise=True,
)
"""Another process may hold the write lock for a moment (a run of another batch): wait, up to 2 min."""


@_wait_for_lock
def _connect_read_only(database: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(database=database, read_only=True)


@_wait_for_lock
def _connect_with_retry(database: str, config: dict) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(database=database, read_only=False, config=config)


class AtomicPandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        table = f"{_quote(table_slice.schema)}.{_quote(table_slice.table)}"
        connection.register("prefpipe_obj", obj)
        try:
            connection.execute("BEGIN TRANSACTION")
            connection.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM prefpipe_obj LIMIT 0")
            existing = {row[0] for row in connection.execute(f"DESCRIBE {table}").fetchall()}
            described = connection.execute("DESCRIBE SELECT * FROM prefpipe_obj").fetchall()
            for name, sql_type, *_ in described:
                if name not in existing:
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(name)} {sql_type}")
            DuckDbClient.delete_table_slice(context, table_slice, connection)
            connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM prefpipe_obj")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.unregister("prefpipe_obj")
        key = "dagster/partition_row_count" if context.has_partition_key else "dagster/row_count"
        context.add_output_metadata({key: int(obj.shape[0])})

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        try:
            return super().load_input(context, table_slice, connection)
        except duckdb.CatalogException:
            columns = schemas.TABLES.get(table_slice.table)
            if columns is None:
                raise
            frame = schemas.empty(columns)
            if table_slice.partition_dimensions:
                frame.insert(0, "batch_id", pd.Series(dtype="string"))
            return frame


class WarehouseIOManager(DuckDBPandasIOManager):
    """DuckDB pandas I/O manager with atomic partition replacement (see the module docstring)."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [AtomicPandasTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_AtomicDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="WarehouseIOManager",
        )


@contextmanager
def read_only(database: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A short read-only connection to the warehouse, or None when there is no warehouse yet.

    A run may hold DuckDB's write lock for a moment: wait for it (_wait_for_lock) instead of failing.
    Every reader outside the I/O manager (CLI commands, checks, assets reading other batches) uses it."""
    path = Path(database or settings.warehouse_path())
    if not path.is_file():
        yield None
        return
    con = _connect_read_only(str(path))
    try:
        yield con
    finally:
        con.close()


def present_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables the warehouse holds (a table is created by its asset's first run)."""
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]).fetchall()
    return {r[0] for r in rows}


def read_tables(tables: Sequence[str], *, batch_id: str | None = None, database: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Rows of several warehouse tables (optionally one batch's) in one short read-only connection; a
    table not written yet, or no warehouse at all, reads as an empty frame with its schema's columns."""
    out = {table: schemas.empty({"batch_id": "string", **schemas.TABLES[table]}) for table in tables}
    with read_only(database) as con:
        if con is None:
            return out
        present = present_tables(con)
        where, params = ("WHERE batch_id = ?", [batch_id]) if batch_id is not None else ("", [])
        for table in tables:
            if table in present:
                out[table] = con.execute(f"SELECT * FROM {SCHEMA}.{_quote(table)} {where}", params).fetchdf()
    return out


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
            got = dict(con.execute(f"SELECT batch_id, count(*) FROM {SCHEMA}.{_quote(table)} GROUP BY batch_id").fetchall())
            rows.append({"table": table, **{b: int(got.get(b, 0)) for b in batch_ids}})
    return pd.DataFrame(rows).set_index("table") if rows else pd.DataFrame()
