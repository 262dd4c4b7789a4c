"""A failed run leaves every warehouse table's rows for its batch as they were before the run:
the undo log (prefpipe.core.run_undo) puts back what a failed run wrote when it ends, and a run
whose process was killed is marked failed and put back before anyone writes over it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from prefpipe.core.run_undo import Slice, record_before_write, settle, unsettled_runs
from prefpipe.core.warehouse import read_table
from prefpipe.defs.resources import PublishFolders
from prefpipe.defs.run_health import HOST_TAG, PID_TAG, fail_runs_whose_process_died
from prefpipe.defs.warehouse_io import settle_finished_runs
from prefpipe_tests.conftest import PROJECT_ROOT
from prefpipe_tests.defs.conftest import make_batch, materialize, project_data  # noqa: F401 (project_data: fixture)

TABLES = ("prompts", "response_pairs", "ai_labels", "judge_calls", "routing", "human_queue", "human_annotations",
          "annotator_reliability", "filtered_annotations", "final_labels", "agreement_report", "cost_report", "preference_dataset")


def snapshot(batch_id: str) -> dict[str, list]:
    """Every table's rows for the batch, sorted, as plain tuples."""
    out = {}
    for table in TABLES:
        frame = read_table(table, batch_id=batch_id)
        out[table] = sorted(map(repr, frame.astype("string").fillna("<NA>").itertuples(index=False)))
    return out


def add_prompt(folder: Path, i: int) -> None:
    with (folder / "prompts.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?", "responses": [{"text": f"a{i}"}, {"text": f"b{i} longer"}]}) + "\n")


def test_a_run_that_fails_in_its_last_step_puts_every_table_back(project_data, tmp_path):
    folder = make_batch(project_data, "mini")
    with dg.instance_for_test() as instance:
        assert materialize("mini", instance).success
        before = snapshot("mini")
        add_prompt(folder, 50)  # a rerun that got through would change prompts, pairs, routing, ...
        blocked = tmp_path / "not-a-folder"
        blocked.write_text("a file where the export folder should be")
        failed = materialize("mini", instance, resources={"publish_folders": PublishFolders(exports=str(blocked), reports=str(blocked))})
        assert not failed.success
        assert [e.step_key for e in failed.all_events if e.is_step_failure] == ["published_dataset"]
        assert snapshot("mini") == before
        with duckdb.connect(str(project_data / "warehouse.duckdb"), read_only=True) as con:
            assert unsettled_runs(con) == []  # settled when the run ended
        assert materialize("mini", instance).success  # and a good run then takes the new prompt
        assert len(read_table("prompts", batch_id="mini")) == 7


def test_a_successful_run_keeps_its_rows_and_leaves_no_undo(project_data):
    make_batch(project_data, "mini")
    with dg.instance_for_test() as instance:
        assert materialize("mini", instance).success
    with duckdb.connect(str(project_data / "warehouse.duckdb"), read_only=True) as con:
        assert unsettled_runs(con) == []
        assert con.execute("SELECT count(*) FROM prefpipe_undo.writes").fetchall()[0][0] == 0
    assert len(read_table("final_labels", batch_id="mini")) == 6


def test_the_undo_log_restores_a_slice_and_forgets_a_success(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE main.t AS SELECT * FROM (VALUES ('b1', 1), ('b1', 2), ('b2', 9)) v(batch_id, x)")
    for run, values in (("r1", [10]), ("r2", [20, 21])):
        con.execute("BEGIN")
        record_before_write(con, Slice("main", "t", "b1"), run)
        record_before_write(con, Slice("main", "t", "b1"), run)  # a retried step keeps the first copy
        con.execute("DELETE FROM main.t WHERE batch_id = 'b1'")
        con.executemany("INSERT INTO main.t VALUES ('b1', ?)", [[v] for v in values])
        con.execute("COMMIT")
        if run == "r1":
            assert settle(con, run, restore=False) == 0  # success: rows kept, copy dropped
    assert settle(con, "r2", restore=True) == 1
    assert sorted(con.execute("SELECT batch_id, x FROM main.t").fetchall()) == [("b1", 10), ("b2", 9)]
    assert unsettled_runs(con) == []


def wait_for(predicate, what: str, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_run_is_marked_failed_and_its_rows_put_back(project_data, tmp_path, monkeypatch):
    folder = make_batch(project_data, "mini")
    home = tmp_path / "home"
    env = {**os.environ, "PREFPIPE_DATA_DIR": str(project_data), "DAGSTER_HOME": str(home)}
    prefpipe = str(Path(sys.executable).with_name("prefpipe"))
    assert subprocess.run([prefpipe, "run", "--batch", "mini"], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=600).returncode == 0
    before = snapshot("mini")
    add_prompt(folder, 60)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    child = subprocess.Popen([prefpipe, "run", "--batch", "mini"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with dg.DagsterInstance.get() as instance:
            def wrote_pairs() -> bool:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(child.pid)}))
                return bool(runs) and any(
                    r.asset_key and r.asset_key.to_user_string() == "response_pairs"
                    for r in instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
                    for r in [r.event_log_entry.dagster_event])
            wait_for(wrote_pairs, "the run to write response_pairs")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            [run] = instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(child.pid)}))
            assert run.status == dg.DagsterRunStatus.STARTED and run.tags[HOST_TAG]  # stuck, as the probe found
            assert len(read_table("prompts", batch_id="mini")) == 7  # half a run is in the warehouse
            assert fail_runs_whose_process_died(instance) == [run.run_id]
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            with duckdb.connect(str(project_data / "warehouse.duckdb")) as con:
                assert settle_finished_runs(con, instance) == {run.run_id: "restored"}
            assert snapshot("mini") == before
    finally:
        if child.poll() is None:
            child.kill()
    done = subprocess.run([prefpipe, "run", "--batch", "mini"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(read_table("prompts", batch_id="mini")) == 7


def test_a_daemon_launched_run_is_checked_by_the_pid_of_its_run_worker(data_dir):
    """Runs the daemon launches (the default run launcher) carry no prefpipe tags: the pid of the
    run worker is the one Dagster recorded with the run's RUN_START event."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
        instance.handle_new_event(dg.EventLogEntry(
            error_info=None, level="DEBUG", user_message="", run_id=run.run_id, timestamp=time.time(),
            dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name, pid=dead.pid)))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        assert fail_runs_whose_process_died(instance) == [run.run_id]


def test_the_sensor_fails_a_run_whose_process_is_gone(data_dir):
    from prefpipe.defs.run_health_sensor import runs_whose_process_died

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags={HOST_TAG: __import__("socket").gethostname(), PID_TAG: str(dead.pid)})
        instance.handle_new_event(dg.EventLogEntry(
            error_info=None, level="DEBUG", user_message="", run_id=run.run_id, timestamp=time.time(),
            dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name)))
        alive = instance.create_run_for_job(dg.GraphDefinition("h").to_job(), tags={HOST_TAG: __import__("socket").gethostname(), PID_TAG: str(os.getpid())})
        instance.handle_new_event(dg.EventLogEntry(
            error_info=None, level="DEBUG", user_message="", run_id=alive.run_id, timestamp=time.time(),
            dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=alive.job_name)))
        result = runs_whose_process_died(dg.build_sensor_context(instance=instance))
        assert "1 dead run" in result.skip_message
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
