"""The DuckDB warehouse I/O manager: Dagster's DuckDB pandas I/O manager, made atomic.

The stock manager deletes a partition's rows and inserts the new ones in two autocommitted
statements, skips the write (and so never creates the table) for an empty frame, and inserts by
column position. Here the delete and insert of one partition are one transaction (a failed write
leaves the batch's previous rows in place), an empty frame still creates its table so downstream
stages can read "no rows", columns are inserted by name, and a column added in a newer prefpipe is
added to an existing table instead of failing. A table not written yet reads as an empty frame
with the columns of prefpipe.core.schemas.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pydantic
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
import pandas as pd
from dagster import InputContext, OutputContext
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_duckdb_pandas.duckdb_pandas_type_handler import DuckDBPandasTypeHandler

from prefpipe.core import schemas
from prefpipe.core.run_undo import Slice, record_before_write, settle, unsettled_runs
from prefpipe.core.warehouse import connect_for_write, fetch_frame, quote, target

FINISHED_OK = {"SUCCESS"}
IO_MEMORY_LIMIT = "1GB"
"""DuckDB's buffer pool on the I/O manager's connections, which only scan one table or insert one
frame: by default (80% of RAM) it keeps every block an insert wrote, +1 GB of RSS for a million
pairs' texts, and the insert is no faster for it. A resource's connection_config may change it."""
FINISHED_BAD = {"FAILURE", "CANCELED"}


class _AtomicDuckDbClient(DuckDbClient):
    """Leaves the delete to the type handler, which does it inside the write's transaction, and
    closes the connection even when the write fails (the stock client leaks it, holding the lock)."""

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        return None

    @staticmethod
    @contextmanager
    def connect(context, table_slice):
        config = {"custom_user_agent": "prefpipe", "memory_limit": IO_MEMORY_LIMIT, **context.resource_config["connection_config"]}
        conn = connect_for_write(context.resource_config["database"], config)
        try:
            yield conn
        finally:
            conn.close()


def rollback(connection) -> None:
    """Roll back if a transaction is still open (a failed COMMIT has already ended it)."""
    try:
        connection.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass


_retry_conflicts = retry(
    retry=retry_if_exception_type(duckdb.TransactionException),
    wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
    stop=stop_after_attempt(8),
    reraise=True,
)
"""Two runs that replace the same rows at once (the unpartitioned guidelines table) conflict at
COMMIT in the lakehouse; the loser writes again on top of the winner's commit."""


class AtomicPandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        table = f"{quote(table_slice.schema)}.{quote(table_slice.table)}"
        if not target(context.resource_config["database"]).is_lakehouse:  # the lakehouse's sensor settles there (no racing writers)
            settle_finished_runs(connection, context.step_context.instance, current=context.run_id)
        part = Slice(table_slice.schema, table_slice.table, context.partition_key if table_slice.partition_dimensions else None)
        connection.register("prefpipe_obj", to_arrow(obj))

        @_retry_conflicts
        def write() -> None:
            connection.execute("BEGIN TRANSACTION")
            try:
                record_before_write(connection, part, context.run_id)  # what a failure of this run puts back
                connection.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM prefpipe_obj LIMIT 0")
                existing = {row[0] for row in connection.execute(f"DESCRIBE {table}").fetchall()}
                described = connection.execute("DESCRIBE SELECT * FROM prefpipe_obj").fetchall()
                for name, sql_type, *_ in described:
                    if name not in existing:
                        connection.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {sql_type}")
                DuckDbClient.delete_table_slice(context, table_slice, connection)
                connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM prefpipe_obj")
                connection.execute("COMMIT")
            except BaseException:
                rollback(connection)
                raise

        try:
            write()
        finally:
            connection.unregister("prefpipe_obj")
        key = "dagster/partition_row_count" if context.has_partition_key else "dagster/row_count"
        context.add_output_metadata({key: int(obj.shape[0])})

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        try:
            if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
                return pd.DataFrame()
            return fetch_frame(connection, DuckDbClient.get_select_statement(table_slice))
        except duckdb.CatalogException:
            columns = schemas.TABLES.get(table_slice.table)
            if columns is None:
                raise
            frame = schemas.empty(columns)
            if table_slice.partition_dimensions:
                frame.insert(0, "batch_id", pd.Series(dtype="string"))
            return frame[list(table_slice.columns)] if table_slice.columns else frame


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table for DuckDB to insert: Arrow-backed text is handed over without a
    copy, Python text is converted once."""
    return pa.Table.from_pandas(frame, preserve_index=False)


def settle_finished_runs(connection, instance, *, current: str | None = None) -> dict[str, str]:
    """Settle the undo entries of runs the instance says have finished (a run killed before it
    could settle itself): put back what a failed or cancelled run wrote, forget a successful
    one's. Runs still in progress, and `current`, are left alone. Returns run id -> what was done."""
    done: dict[str, str] = {}
    pending = unsettled_runs(connection)
    if pending and instance is not None and set(pending) - {current}:
        from prefpipe.defs.run_health import fail_runs_whose_process_died

        fail_runs_whose_process_died(instance)  # a killed run's rows are put back before anyone writes over them
    for run_id in pending:
        if run_id == current:
            continue
        run = instance.get_run_by_id(run_id) if instance is not None else None
        status = run.status.value if run is not None else "UNKNOWN"
        if status in FINISHED_OK:
            settle(connection, run_id, restore=False)
            done[run_id] = "kept"
        elif status in FINISHED_BAD or run is None:  # a run this instance does not know cannot be shown to have succeeded
            settle(connection, run_id, restore=True)
            done[run_id] = "restored"
    return done


def settle_run(database: str, instance, run_id: str) -> str | None:
    """Settle one run at its end: restore the warehouse if any of its steps failed, else drop
    its undo copies. Returns "restored", "kept" or None when the run wrote nothing."""
    import dagster as dg

    if not target(database).exists():
        return None
    failed = bool(instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1).records)
    con = connect_for_write(database, {"custom_user_agent": "prefpipe"})
    try:
        if run_id not in unsettled_runs(con):
            return None
        settle(con, run_id, restore=failed)
    finally:
        con.close()
    return "restored" if failed else "kept"


class WarehouseIOManager(DuckDBPandasIOManager):
    """DuckDB pandas I/O manager with atomic partition replacement (see the module docstring), and
    an undo log that makes the whole run atomic: when the run ends (its resources are torn down,
    in the run's own process with the in-process executor) a run with a failed step has every
    table it wrote put back as it was before the run."""

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

    settle_on_teardown: bool = pydantic.Field(
        True, description="Settle the run's undo log when its resources are torn down: right when every step runs in the "
        "run's own process (the in-process executor); with parallel or Celery steps the `settle_finished_runs` sensor settles it.")

    def teardown_after_execution(self, context) -> None:
        if not self.settle_on_teardown:
            return
        run = context.run
        if run is not None and context.instance is not None:
            result = settle_run(self.database, context.instance, run.run_id)
            if result == "restored" and context.log is not None:
                context.log.warning(f"a step of run {run.run_id} failed: every warehouse table it wrote was put back as it was before the run")
