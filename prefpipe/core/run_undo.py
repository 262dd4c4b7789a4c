"""A run's undo log in the warehouse, so a failed run leaves every table's rows for its batch as
they were before it started.

Each table write of a run is atomic on its own (one transaction), but a run writes many tables:
a failure in a later step would leave the earlier ones rewritten. So the first time a run writes
a table's slice (one batch's rows, or the whole table when it is not partitioned), the rows it
replaces are copied into `prefpipe_undo.<table>` in the same transaction, and the slice is listed
in `prefpipe_undo.writes`. When the run ends it is settled: after a failure the copies are put back
(one transaction per slice), after a success they are dropped. A run killed before it could settle
is settled later, by whoever finds its entries once the Dagster instance says it has finished.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

UNDO_SCHEMA = "prefpipe_undo"
RUN_COLUMN = "_prefpipe_undo_run"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Slice:
    """One table's rows that one write replaces: a batch's rows, or the whole table (batch_id None)."""

    schema: str
    table: str
    batch_id: str | None

    @property
    def qualified(self) -> str:
        return f"{_q(self.schema)}.{_q(self.table)}"

    def where(self, prefix: str = "") -> tuple[str, list]:
        return (f"{prefix}batch_id = ?", [self.batch_id]) if self.batch_id is not None else ("TRUE", [])


def _ensure_log(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {UNDO_SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {UNDO_SCHEMA}.writes (run_id VARCHAR, table_schema VARCHAR, table_name VARCHAR, "
        "batch_id VARCHAR, table_existed BOOLEAN, recorded_at TIMESTAMP DEFAULT current_timestamp)"
    )


def _columns(con: duckdb.DuckDBPyConnection, qualified: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {qualified}").fetchall()]


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database()",
        [schema, table]).fetchall()[0][0])


def record_before_write(con: duckdb.DuckDBPyConnection, part: Slice, run_id: str) -> None:
    """Inside the write's transaction, before the slice is replaced: keep its current rows for
    `run_id`, once per run (a retried step keeps the rows from before the run, not its own)."""
    _ensure_log(con)
    seen = con.execute(
        f"SELECT count(*) FROM {UNDO_SCHEMA}.writes WHERE run_id = ? AND table_schema = ? AND table_name = ? AND batch_id IS NOT DISTINCT FROM ?",
        [run_id, part.schema, part.table, part.batch_id]).fetchall()[0][0]
    if seen:
        return
    existed = _table_exists(con, part.schema, part.table)
    con.execute(f"INSERT INTO {UNDO_SCHEMA}.writes (run_id, table_schema, table_name, batch_id, table_existed) VALUES (?, ?, ?, ?, ?)",
                [run_id, part.schema, part.table, part.batch_id, existed])
    if not existed:
        return
    undo = f"{UNDO_SCHEMA}.{_q(part.schema + '__' + part.table)}"
    con.execute(f"CREATE TABLE IF NOT EXISTS {undo} AS SELECT *, ''::VARCHAR AS {RUN_COLUMN} FROM {part.qualified} LIMIT 0")
    have = {name for name, _ in _columns(con, undo)}
    for name, sql_type in _columns(con, part.qualified):
        if name not in have:
            con.execute(f"ALTER TABLE {undo} ADD COLUMN {_q(name)} {sql_type}")
    where, params = part.where()
    con.execute(f"INSERT INTO {undo} BY NAME SELECT *, ? AS {RUN_COLUMN} FROM {part.qualified} WHERE {where}", [run_id, *params])


def unsettled_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Runs with undo entries not yet settled (an empty list when no run ever wrote)."""
    if not _table_exists(con, UNDO_SCHEMA, "writes"):
        return []
    return [row[0] for row in con.execute(f"SELECT DISTINCT run_id FROM {UNDO_SCHEMA}.writes ORDER BY run_id").fetchall()]


def settle(con: duckdb.DuckDBPyConnection, run_id: str, *, restore: bool) -> int:
    """End a run's undo entries: put the rows from before the run back (restore=True, after a
    failure) or drop them (after a success). One transaction; returns the slices restored."""
    if not _table_exists(con, UNDO_SCHEMA, "writes"):
        return 0
    entries = con.execute(
        f"SELECT table_schema, table_name, batch_id, table_existed FROM {UNDO_SCHEMA}.writes WHERE run_id = ?", [run_id]).fetchall()
    if not entries:
        return 0
    restored = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for schema, table, batch_id, existed in entries:
            part = Slice(schema, table, batch_id)
            undo = f"{UNDO_SCHEMA}.{_q(schema + '__' + table)}"
            if restore and _table_exists(con, schema, table):
                where, params = part.where()
                con.execute(f"DELETE FROM {part.qualified} WHERE {where}", params)
                if existed:
                    undo_where, undo_params = part.where()
                    con.execute(
                        f"INSERT INTO {part.qualified} BY NAME SELECT * EXCLUDE ({RUN_COLUMN}) FROM {undo} "
                        f"WHERE {RUN_COLUMN} = ? AND {undo_where}", [run_id, *undo_params])
                restored += 1
            if existed:
                con.execute(f"DELETE FROM {undo} WHERE {RUN_COLUMN} = ?", [run_id])
        con.execute(f"DELETE FROM {UNDO_SCHEMA}.writes WHERE run_id = ?", [run_id])
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.TransactionException:
            pass  # a failed COMMIT has already ended the transaction
        raise
    return restored
