"""The lakehouse warehouse (DuckLake: catalog in a real PostgreSQL, Parquet in a folder) through
prefpipe's own command line: runs fill it, `prefpipe sql` reads it, four runs write it at once,
a killed run leaves the rows it found, and a wrong address says so in one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from prefpipe_tests.conftest import PROJECT_ROOT
from prefpipe_tests.defs.conftest import make_batch

pytestmark = pytest.mark.team
BIN = Path(sys.executable).parent
TABLES = ("prompts", "response_pairs", "ai_labels", "routing", "human_annotations", "final_labels", "preference_dataset")


def project(tmp_path: Path, lakehouse: str, batches: list[str], postgres, n: int = 6) -> dict[str, str]:
    """A data folder with the batches, the lakehouse, and a Dagster instance in PostgreSQL
    (deploy/dagster.yaml, as the team stack runs it)."""
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data / "guidelines")
    for b in batches:
        make_batch(data, b, n=n)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    instance_db = postgres.create_database(f"dagster_{tmp_path.name[-20:].lower().replace('-', '_')}_{os.getpid()}")
    return {
        **os.environ, "PREFPIPE_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "PREFPIPE_WAREHOUSE": lakehouse,
        "DAGSTER_PG_HOST": postgres.host, "DAGSTER_PG_PORT": str(postgres.port), "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_DB": instance_db, "PGPASSWORD": postgres.password,
    }


def prefpipe(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefpipe"), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def counts(env: dict[str, str], table: str) -> dict[str, int]:
    done = prefpipe(env, "sql", f"select batch_id, count(*) as n from {table} group by 1 order by 1", "--format", "csv")
    assert done.returncode == 0, done.stderr
    return {line.split(",")[0]: int(line.split(",")[1]) for line in done.stdout.strip().splitlines()[1:]}


def test_a_run_fills_the_lakehouse_and_prefpipe_sql_reads_it(tmp_path, lakehouse, postgres):
    env = project(tmp_path, lakehouse, ["mini"], postgres)
    done = prefpipe(env, "run", "--batch", "mini")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ducklake:postgresql://prefpipe@" in done.stdout and postgres.password not in done.stdout + done.stderr
    assert counts(env, "final_labels") == {"mini": 6}
    snapshots = prefpipe(env, "sql", "select count(*) as n from ducklake_snapshots('lake')", "--format", "json")
    assert snapshots.returncode == 0 and '"n":' in snapshots.stdout  # every commit is a snapshot: the audit trail
    refused = prefpipe(env, "sql", "delete from final_labels")
    assert refused.returncode == 1 and "read-only" in refused.stderr
    assert counts(env, "final_labels") == {"mini": 6}


def test_four_runs_write_four_batches_at_once(tmp_path, lakehouse, postgres):
    batches = ["b1", "b2", "b3", "b4"]
    env = project(tmp_path, lakehouse, batches, postgres, n=8)
    assert prefpipe(env, "batches").returncode == 0
    runs = [subprocess.Popen([str(BIN / "prefpipe"), "run", "--batch", b], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for b in batches]
    outputs = [r.communicate(timeout=900) for r in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-3000:]
        assert "lock" not in err.lower()
    per_batch = {"human_annotations": 24, "preference_dataset": 7}  # 3 labels a pair; the one tie (q2) carries no preference
    for table in TABLES:
        assert counts(env, table) == {b: per_batch.get(table, 8) for b in batches}, table


@pytest.mark.slow
def test_a_killed_run_leaves_the_rows_it_found(tmp_path, lakehouse, postgres, monkeypatch):
    from prefpipe.core.warehouse import connect_for_write
    from prefpipe.defs.run_health import PID_TAG, fail_runs_whose_process_died
    from prefpipe.defs.warehouse_io import settle_finished_runs

    env = project(tmp_path, lakehouse, ["mini"], postgres)
    assert prefpipe(env, "run", "--batch", "mini").returncode == 0
    before = {t: counts(env, t) for t in TABLES}
    with (Path(env["PREFPIPE_DATA_DIR"]) / "batches" / "mini" / "prompts.jsonl").open("a") as f:
        f.write('{"id": "q9", "prompt": "one more?", "responses": [{"text": "a"}, {"text": "b b"}]}\n')
    child = subprocess.Popen([str(BIN / "prefpipe"), "run", "--batch", "mini"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for name in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_DB", "PGPASSWORD"):
        monkeypatch.setenv(name, env[name])
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 300
        while True:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(child.pid)}))
            done = runs and any(e.event_log_entry.dagster_event.asset_key.to_user_string() == "routing"
                                for e in instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records)
            if done:
                break
            assert time.monotonic() < deadline, "the run never wrote routing"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert counts(env, "prompts") == {"mini": 7}  # half a run is visible...
        assert fail_runs_whose_process_died(instance) == [runs[0].run_id]
        con = connect_for_write(lakehouse, {})
        try:
            assert settle_finished_runs(con, instance) == {runs[0].run_id: "restored"}  # ...until the sensor settles it
        finally:
            con.close()
    assert {t: counts(env, t) for t in TABLES} == before


def test_an_unreachable_catalog_is_one_line_naming_the_variable_and_the_address(tmp_path, postgres):
    env = project(tmp_path, f"ducklake:postgresql://prefpipe:{postgres.password}@127.0.0.1:1/nowhere?data_path={tmp_path / 'lake'}", ["mini"], postgres)
    done = prefpipe(env, "sql", "select 1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PREFPIPE_WAREHOUSE" in lines[0] and "127.0.0.1:1" in lines[0], done.stderr
    assert postgres.password not in done.stderr and "Traceback" not in done.stderr
    run = prefpipe(env, "run", "--batch", "mini")
    assert run.returncode != 0 and "PREFPIPE_WAREHOUSE" in run.stderr and "Traceback" not in run.stderr and postgres.password not in run.stderr + run.stdout
