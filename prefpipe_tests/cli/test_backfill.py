"""Relabelling batches: the automation condition (content changes request the labelled batches,
same-content rematerializations request nothing), and a real backfill of four batches at once
launched by `prefpipe backfill` and run by the Dagster daemon against one DuckDB warehouse."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import dagster as dg

from prefpipe.defs.automation import GUIDELINES, guideline_automation_sensor
from prefpipe.core.stale_view import batches_to_rerun
from prefpipe.defs.stale_view import compute_view
from prefpipe.core.warehouse import row_counts
from prefpipe_tests.defs.conftest import make_batch, project_data  # noqa: F401 (project_data: fixture)
from prefpipe_tests.conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent
DOWNSTREAM = ("routing", "human_queue", "human_annotations", "annotator_reliability", "filtered_annotations",
              "final_labels", "agreement_report", "cost_report", "preference_dataset", "published_dataset")


def publish_guidelines(instance: dg.DagsterInstance) -> None:
    """Materialize the guidelines asset alone, as a click in the UI (or any batch run) does."""
    from prefpipe.definitions import build_definitions

    assert dg.materialize(build_definitions().assets, selection=[GUIDELINES], instance=instance, resources=build_definitions().resources).success


ALL_KEYS = ("guidelines", "prompts", "response_pairs", "generation_calls", "ai_labels", "judge_calls", *DOWNSTREAM)


def requested(result) -> dict[str, set[str]]:
    """Asset -> requested batches, for every asset with a request."""
    got = {key: set(result.get_requested_partitions(dg.AssetKey(key))) for key in ALL_KEYS}
    return {key: parts for key, parts in got.items() if parts}


def test_guideline_content_changes_request_the_labelled_batches_and_rematerializations_do_not(project_data):
    from prefpipe.definitions import build_definitions

    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batches", ["b1", "b2", "never_run"])
    for batch_id in ("b1", "b2"):  # labelled earlier; never_run is left to the new-batch sensor
        for key in ("ai_labels", "judge_calls", *DOWNSTREAM):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=batch_id))
    publish_guidelines(instance)

    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0
    publish_guidelines(instance)  # same content, same data version
    same = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert same.total_requested == 0, requested(same)

    guidelines = project_data / "guidelines" / "guidelines.md"
    guidelines.write_text(guidelines.read_text() + "\n- A refusal of a harmless request is worse than a weak answer.\n")
    publish_guidelines(instance)
    changed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=same.cursor)
    got = requested(changed)
    assert got["ai_labels"] == {"b1", "b2"} and got["judge_calls"] == {"b1", "b2"}
    assert all(got[key] == {"b1", "b2"} for key in DOWNSTREAM), got  # rebuilt in the same runs
    assert set(got) == {"ai_labels", "judge_calls", *DOWNSTREAM}  # prompts and pairs stay as they are

    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=changed.cursor)
    assert after.total_requested == 0  # handled once


def test_eager_would_have_relabelled_on_a_same_content_rematerialization(project_data):
    """Why the condition keys on the data version: eager() fires on any rematerialization."""
    from prefpipe.definitions import build_definitions

    eager = dg.map_asset_specs(
        lambda spec: spec.replace_attributes(automation_condition=dg.AutomationCondition.eager()) if spec.key == dg.AssetKey("ai_labels") else spec,
        build_definitions().assets)
    defs = dg.Definitions(assets=eager, resources=build_definitions().resources)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batches", ["b1"])
    for key in ("ai_labels", "judge_calls", "response_pairs", "generation_calls"):
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="b1"))
    publish_guidelines(instance)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets("ai_labels"))
    publish_guidelines(instance)  # same content
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets("ai_labels"), cursor=first.cursor)
    assert again.get_requested_partitions(dg.AssetKey("ai_labels")) == {"b1"}


def test_the_automation_sensor_is_on_by_default_and_in_the_definitions(data_dir):
    from prefpipe.definitions import build_definitions

    assert guideline_automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert build_definitions().resolve_sensor_def(guideline_automation_sensor.name) is not None


def write_instance_yaml(home: Path, max_concurrent_runs: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        f"  config:\n    max_concurrent_runs: {max_concurrent_runs}\n    dequeue_interval_seconds: 1\n"
    )


@pytest.mark.slow
def test_a_backfill_of_four_batches_runs_them_at_once_through_the_daemon(project_data, tmp_path):
    """The project's dagster.yaml queues one run at a time; here four may run together, so the four
    runs write the same DuckDB warehouse at once and must wait for each other's locks."""
    batch_ids = ["b1", "b2", "b3", "b4"]
    shutil.rmtree(project_data / "batches" / "mini")  # else the new-batch sensor runs it beside the backfill
    for batch_id in batch_ids:
        make_batch(project_data, batch_id)
    home = tmp_path / "dagster_home"
    write_instance_yaml(home, max_concurrent_runs=4)
    env = {**os.environ, "PREFPIPE_DATA_DIR": str(project_data), "DAGSTER_HOME": str(home)}

    launch = subprocess.run([str(BIN / "prefpipe"), "backfill", *[a for b in batch_ids for a in ("--batch", b)]],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert launch.returncode == 0, launch.stdout + launch.stderr[-3000:]
    backfill_id = re.search(r"launched backfill (\w+)", launch.stdout).group(1)
    assert "no Dagster daemon is running" in launch.stdout  # nothing runs it yet

    with open(tmp_path / "daemon.log", "w") as log:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=PROJECT_ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            watch = subprocess.run([str(BIN / "prefpipe"), "backfill", "--watch", backfill_id, "--timeout", "400"],
                                   cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=460)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)  # the daemon we started, with its code servers
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
    daemon_log = (tmp_path / "daemon.log").read_text()
    assert watch.returncode == 0, watch.stdout + watch.stderr[-2000:] + daemon_log[-4000:]
    assert f"backfill {backfill_id}: every batch succeeded" in watch.stdout

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == batch_ids
        assert {r.dagster_run.job_name for r in records} == {"pipeline"}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        # all four were running at the same moment: each started before any of them ended
        assert max(r.start_time for r in records) < min(r.end_time for r in records)
        key = dg.AssetCheckKey(dg.AssetKey("preference_dataset"), "export_is_well_formed")
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        assert sorted(r.partition for r in history) == batch_ids and {r.status.value for r in history} == {"SUCCEEDED"}
        view, in_warehouse, _ = compute_view(instance)  # what `prefpipe stale` shows
    assert in_warehouse == batch_ids and batches_to_rerun(view) == []
    counts = row_counts(batch_ids, database=str(project_data / "warehouse.duckdb"))
    assert (counts.loc["preference_dataset"] == 5).all() and (counts.loc["ai_labels"] == 6).all()  # 6 pairs, one tie left out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_backfill_sent_to_a_running_webserver_waits_in_the_instance_for_the_daemon(project_data, tmp_path):
    import time

    import httpx

    home = tmp_path / "dagster_home"
    write_instance_yaml(home, max_concurrent_runs=1)
    env = {**os.environ, "PREFPIPE_DATA_DIR": str(project_data), "DAGSTER_HOME": str(home)}
    url = f"http://127.0.0.1:{free_port()}"
    with open(tmp_path / "webserver.log", "w") as log:
        server = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]],
                                  cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for _ in range(240):  # bounded: up to about two minutes for the server and its code location
                assert server.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            launch = subprocess.run([str(BIN / "prefpipe"), "backfill", "--batch", "mini", "--webserver", url],
                                    cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    assert launch.returncode == 0, launch.stdout + launch.stderr[-3000:]
    backfill_id = re.search(r"launched backfill (\w+)", launch.stdout).group(1)
    assert "no Dagster daemon is running" in launch.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        backfill = instance.get_backfill(backfill_id)
        assert backfill.status.value == "REQUESTED" and list(backfill.partition_names) == ["mini"]
        assert backfill.tags["prefpipe/command"] == "prefpipe backfill"
        assert "mini" in instance.get_dynamic_partitions("batches")  # registered before the launch
