"""The warehouse I/O manager replaces a batch's rows atomically, on a real DuckDB file."""

import duckdb
import pandas as pd
import pytest

import dagster as dg

from prefpipe.core.warehouse import read_table, row_counts
from prefpipe.defs.warehouse_io import WarehouseIOManager

parts = dg.DynamicPartitionsDefinition(name="batches")


def make_assets(rows_by_batch, fail_batches=()):
    @dg.asset(partitions_def=parts, metadata={"partition_expr": "batch_id"}, io_manager_key="warehouse")
    def final_labels(context) -> pd.DataFrame:
        b = context.partition_key
        df = pd.DataFrame({"batch_id": b, "pair_id": [f"{b}-{i}" for i in range(rows_by_batch[b])], "label": "A>B"})
        if b in fail_batches:
            df["label"] = "BAD"  # violates the CHECK the test adds: the insert fails after the delete
        return df

    @dg.asset(partitions_def=parts, metadata={"partition_expr": "batch_id"}, io_manager_key="warehouse")
    def preference_dataset(context, final_labels: pd.DataFrame) -> pd.DataFrame:
        return final_labels.iloc[0:0]

    return [final_labels, preference_dataset]


def run(db, assets, batch):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batches", [batch])
    return dg.materialize(assets, partition_key=batch, instance=instance, resources={"warehouse": WarehouseIOManager(database=str(db), schema="main")}, raise_on_error=False)


def batch_counts(db):
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("select batch_id, count(*) from main.final_labels group by 1").fetchall())


def test_rerun_replaces_rows_and_failed_write_keeps_old_rows(tmp_path):
    db = tmp_path / "w.duckdb"
    assert run(db, make_assets({"b1": 3}), "b1").success
    assert run(db, make_assets({"b2": 2}), "b2").success
    assert run(db, make_assets({"b1": 5}), "b1").success  # rerun: replaced, not appended
    counts = batch_counts(db)
    assert counts == {"b1": 5, "b2": 2}

    with duckdb.connect(str(db)) as con:  # make the next insert of b1 fail inside the transaction
        con.execute("CREATE TABLE main.guarded (batch_id VARCHAR, pair_id VARCHAR, label VARCHAR CHECK (label <> 'BAD'))")
        con.execute("INSERT INTO main.guarded SELECT batch_id, pair_id, label FROM main.final_labels")
        con.execute("DROP TABLE main.final_labels")
        con.execute("ALTER TABLE main.guarded RENAME TO final_labels")
    result = run(db, make_assets({"b1": 4}, fail_batches={"b1"}), "b1")
    assert not result.success
    counts = batch_counts(db)
    assert counts == {"b1": 5, "b2": 2}  # the failed write left the batch's previous rows


def test_empty_frame_creates_table_and_unwritten_table_reads_empty(tmp_path):
    db = tmp_path / "w.duckdb"
    assert run(db, make_assets({"b1": 2}), "b1").success
    df = read_table("preference_dataset", batch_id="b1", database=str(db))
    assert df.empty and list(df.columns)[:3] == ["batch_id", "pair_id", "label"]
    missing = read_table("cost_report", batch_id="b1", database=str(db))
    assert missing.empty and "total_usd" in missing.columns
    grid = row_counts(["b1"], database=str(db))
    assert grid.loc["final_labels", "b1"] == 2 and grid.loc["preference_dataset", "b1"] == 0


def test_readers_wait_for_a_writer_and_read_nothing_without_a_warehouse(tmp_path):
    """Another process's write lock makes a reader wait (not fail) until the writer is done; with no
    warehouse file a reader gets empty frames and no connection, and creates no file."""
    import subprocess
    import sys

    from prefpipe.core.warehouse import read_only

    db = tmp_path / "w.duckdb"
    with read_only(db) as con:
        assert con is None
    assert read_table("final_labels", database=db).empty and not db.exists()

    assert run(db, make_assets({"b1": 3}), "b1").success
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time\n"
         f"con = duckdb.connect({str(db)!r})\n"
         "con.execute(\"INSERT INTO main.final_labels VALUES ('b2', 'b2-0', 'A>B')\")\n"
         "print('locked', flush=True)\n"
         "sys.stdin.readline()\n"
         "time.sleep(1)\n"
         "con.close()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        with pytest.raises(duckdb.IOException):  # the lock is really held: a plain connect fails
            duckdb.connect(str(db), read_only=True)
        writer.stdin.write("go\n")
        writer.stdin.flush()  # the writer lets go a second from now: the reader waits for it
        assert set(read_table("final_labels", database=db)["batch_id"]) == {"b1", "b2"}
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
