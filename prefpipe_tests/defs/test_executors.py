"""Which executor runs the steps, and the Celery settings that keep a step whose worker died from being
lost (acknowledged late, handed to another worker after the visibility timeout). The runs on real
workers are in prefpipe_tests/team/test_celery_faults.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefpipe.core.warehouse_target import parse_target
from prefpipe.defs.executors import VISIBILITY_DEFAULT, celery_settings, executor_choice, pipeline_executor
from prefpipe.errors import PrefpipeError
from prefpipe_tests.conftest import PROJECT_ROOT

LAKE = parse_target("ducklake:postgresql://prefpipe@127.0.0.1:5432/lake?data_path=/tmp/lake")
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def celery_env(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_celery", reason="the [team] packages are not installed")
    monkeypatch.setenv("PREFPIPE_EXECUTOR", "celery")
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.delenv("PREFPIPE_CELERY_VISIBILITY_TIMEOUT", raising=False)


def test_a_duckdb_file_runs_steps_in_process_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFPIPE_EXECUTOR", raising=False)
    assert executor_choice(parse_target(tmp_path / "w.duckdb")) == "in_process"
    monkeypatch.setenv("PREFPIPE_EXECUTOR", "celery")
    with pytest.raises(PrefpipeError, match="takes one writing process"):
        executor_choice(parse_target(tmp_path / "w.duckdb"))
    monkeypatch.setenv("PREFPIPE_EXECUTOR", "dask")
    with pytest.raises(PrefpipeError, match="expected one of in_process, multiprocess, celery"):
        executor_choice(LAKE)


def test_celery_acks_a_step_when_it_ends_and_fails_it_when_its_pool_process_is_killed(celery_env: None) -> None:
    from dagster_celery.defaults import broker_transport_options

    settings = celery_settings()
    assert settings["task_acks_late"] is True  # a step whose worker died goes back to the queue
    assert settings["task_reject_on_worker_lost"] is False  # a step that gets its process killed is not rerun forever
    assert settings["worker_deduplicate_successful_tasks"] is True
    transport = settings["broker_transport_options"]
    assert transport == {**broker_transport_options, "visibility_timeout": VISIBILITY_DEFAULT, "unacked_restore_interval": 60,
                         "unacked_restore_throttle": 1}
    assert pipeline_executor(LAKE).name == "celery"


def test_the_visibility_timeout_comes_from_the_environment(celery_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFPIPE_CELERY_VISIBILITY_TIMEOUT", "10")
    transport = celery_settings()["broker_transport_options"]
    assert transport["visibility_timeout"] == 10 and transport["unacked_restore_interval"] == 1
    for bad in ("0", "-5", "1h"):
        monkeypatch.setenv("PREFPIPE_CELERY_VISIBILITY_TIMEOUT", bad)
        with pytest.raises(PrefpipeError, match="PREFPIPE_CELERY_VISIBILITY_TIMEOUT"):
            celery_settings()


def test_celery_without_a_broker_says_which_variable(celery_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL")
    with pytest.raises(PrefpipeError, match="REDIS_URL"):
        pipeline_executor(LAKE)


def test_the_workers_config_file_is_the_runs_config(celery_env: None, tmp_path: Path) -> None:
    """The worker decides when a step is acknowledged: `dagster-celery worker start -y` must get the
    settings the run has, and accept the file."""
    from dagster_celery.cli import get_validated_config

    printed = subprocess.run([sys.executable, "-m", "prefpipe.defs.executors"], cwd=PROJECT_ROOT, env=dict(os.environ),
                             capture_output=True, text=True, check=True).stdout
    path = tmp_path / "celery.yaml"
    path.write_text(printed)
    config = yaml.safe_load(printed)["execution"]["config"]
    assert config["broker"] == config["backend"] == REDIS
    assert get_validated_config(str(path))["config_source"] == celery_settings()


def test_the_workers_config_file_without_a_broker_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PREFPIPE_EXECUTOR": "celery"}
    done = subprocess.run([sys.executable, "-m", "prefpipe.defs.executors"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["PREFPIPE_EXECUTOR=celery needs REDIS_URL, the Celery broker (e.g. redis://127.0.0.1:6379/0)"]
