"""README command one's core: `prefpipe run --batch demo` on the shipped demo batch, through the
console script and a real, lasting Dagster instance; and `dagster definitions validate`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import dagster as dg

from prefpipe_tests.conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent


def env_for(data_dir: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PREFPIPE_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home)}


@pytest.mark.slow
def test_prefpipe_run_on_the_demo_batch(tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data / "guidelines")
    shutil.copytree(PROJECT_ROOT / "data" / "batches" / "demo", data / "batches" / "demo")
    home = tmp_path / "dagster_home"
    for attempt in (1, 2):  # the second run must leave every row count unchanged
        done = subprocess.run([str(BIN / "prefpipe"), "run", "--batch", "demo"], cwd=PROJECT_ROOT, env=env_for(data, home), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
            count = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
            assert count("select count(*) from response_pairs where batch_id = 'demo'") == 999
            assert count("select count(*) from ai_labels where batch_id = 'demo'") == 999
            assert count("select count(*) from ai_labels where status = 'unparsed' and label is null") == 25
            assert count("select count(*) from human_annotations") == 2997
            assert count("select count(*) from final_labels") == 999
            assert count("select count(*) from preference_dataset") == 894
            kappas = con.execute("select round(value, 2) from agreement_report where metric = 'cohens_kappa' order by scope").fetchall()
            assert [k[0] for k in kappas] == [0.85, 0.88, 0.86]  # PandaLM's published table
            assert count("select count(*) from agreement_report where metric in ('fleiss_kappa', 'krippendorff_alpha_ordinal')") == 2
    assert "warehouse:" in done.stdout and "Open the UI" in done.stdout and str(data / "reports" / "demo.html") in done.stdout
    assert (data / "exports" / "demo" / "train.parquet").is_file() and (data / "reports" / "demo.html").is_file()
    assert "demo" in done.stdout
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert "demo" in instance.get_dynamic_partitions("batches")  # the UI sees the batch
        assert len(instance.get_run_records()) == 2


def test_definitions_validate(tmp_path):
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, env=env_for(tmp_path / "data", tmp_path / "home"), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr


def test_cli_help_lists_the_commands():
    done = subprocess.run([str(BIN / "prefpipe"), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("run", "batches", "judge", "generate", "annotate", "queue", "export"):
        assert command in done.stdout


def test_a_bad_input_file_fails_with_its_file_line_and_field_and_no_traceback(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data / "guidelines")
    batch = data / "batches" / "broken"
    batch.mkdir(parents=True)
    (batch / "prompts.jsonl").write_text('{"prompt": "fine", "responses": [{"text": "a"}, {"text": "b"}]}\n{"prompt": 7}\n', encoding="utf-8")
    run = [str(BIN / "prefpipe"), "run", "--batch", "broken"]
    done = subprocess.run(run, cwd=PROJECT_ROOT, env=env_for(data, tmp_path / "home"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "prompts failed:" in done.stderr and "prompts.jsonl, line 2, field 'prompt'" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr and "dagster._core" not in done.stderr
    verbose = subprocess.run([*run, "--verbose"], cwd=PROJECT_ROOT, env=env_for(data, tmp_path / "home"), capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 1 and "STEP_FAILURE" in verbose.stderr  # --verbose shows Dagster's step log


def test_dg_sees_the_project(tmp_path):
    (tmp_path / "home").mkdir()
    env = env_for(tmp_path / "data", tmp_path / "home")
    check = subprocess.run([str(BIN / "dg"), "check", "defs"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and "All definitions loaded successfully" in check.stdout + check.stderr, check.stderr[-2000:]
    listed = subprocess.run([str(BIN / "dg"), "list", "defs", "--json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    for name in ("ai_labels", "published_dataset", "pipeline", "nightly_open_batches", "new_batch_sensor", "routing_settings"):
        assert f'"{name}"' in listed.stdout, name
