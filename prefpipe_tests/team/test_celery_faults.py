"""A Celery worker killed during a step (issue 13, "Faults and bad input"), for real: PostgreSQL (the
Dagster instance of deploy/dagster.yaml and the lakehouse catalog), Redis, two workers started the
way the team stack starts them (`dagster-celery worker start -A dagster_celery.app -y FILE`, FILE
printed by `python -m prefpipe.defs.executors`) and a Dagster run of the pipeline in its own process
(`dg launch`), its steps on the workers. SIGKILL lands while `response_pairs` writes its output.

- The pool process running the step killed alone: the run fails at once, its error naming Celery's
  WorkerLostError and the signal.
- The whole worker killed (the worker process, its pool, the wrapper: a machine or container gone):
  the step is handed to the other worker and run again, and the run succeeds.

Either way each table holds 0 or all of a batch's rows, never part of them, and the counts come
out exact. The waits are bounds that only stop a hang."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from prefpipe_tests.conftest import PROJECT_ROOT
from prefpipe_tests.defs.conftest import make_batch
from prefpipe_tests.team.conftest import Postgres, unavailable

if TYPE_CHECKING:
    from celery import Celery

pytestmark = [pytest.mark.team, pytest.mark.slow]
BIN = Path(sys.executable).parent
N = 5_000
"""Pairs per batch. Writing response_pairs (one transaction) takes more than half a second: the kill lands in it."""
STEP = "response_pairs"
VISIBILITY_S = 20
"""PREFPIPE_CELERY_VISIBILITY_TIMEOUT here: how long the dead worker's step waits to be handed on (a step
running longer than this would be handed on too, and run twice: harmless, each write replaces the batch's rows)."""
HANG_S = 600.0
TABLES = ("prompts", "response_pairs", "ai_labels", "routing", "human_annotations", "final_labels", "preference_dataset")
EXPECTED = {t: N for t in TABLES} | {"human_annotations": 3 * N, "preference_dataset": N - sum(1 for i in range(N) if i % 6 == 2)}
"""Rows of a batch after a whole run (make_batch: 3 labels a pair; pairs q2, q8, ... are ties, no preference)."""


@dataclass
class Stack:
    env: dict[str, str]
    lake: str
    worker_yaml: Path
    logs: Path
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_worker(self, name: str) -> None:
        """A worker in its own session, so the whole of it (wrapper, worker, pool) can be killed at once."""
        with (self.logs / f"{name}.log").open("ab") as log:
            self.workers[name] = subprocess.Popen(
                [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(self.worker_yaml), "-n", name, "-l", "info"],
                cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ensure_workers(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.workers or self.workers[name].poll() is not None:
                self.start_worker(name)
        wanted = {hostname(n) for n in names}
        deadline = time.monotonic() + 120
        while wanted - {host for reply in celery_app(self.env).control.ping(timeout=1.0) for host in reply}:
            assert time.monotonic() < deadline, f"the workers did not come up (logs in {self.logs})"

    def kill_worker(self, host: str) -> None:
        name = host.split("@", 1)[0]
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait(timeout=30)

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def hostname(name: str) -> str:
    return f"{name}@{socket.gethostname()}"


def celery_app(env: dict[str, str]) -> Celery:
    """dagster-celery's app on the test's broker: to ask the workers which step each pool process runs."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    url = env["REDIS_URL"]
    return make_app(CeleryExecutor.for_cli(broker=url, backend=url).app_args())


@pytest.fixture(scope="module")
def stack(postgres: Postgres, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        import dagster_celery  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the [team] packages are not installed (pip install -e '.[team]')")
    root = tmp_path_factory.mktemp("celery-faults")
    data, home, logs = root / "data", root / "home", root / "logs"
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data / "guidelines")
    home.mkdir()
    logs.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    token = secrets.token_hex(4)
    instance_db, lake_db = postgres.create_database(f"dagster_faults_{token}"), postgres.create_database(f"lake_faults_{token}")
    lake = f"ducklake:postgresql://{postgres.user}@{postgres.host}:{postgres.port}/{lake_db}?data_path={root / 'lake'}"  # password: PGPASSWORD
    env = {
        "PREFPIPE_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "PREFPIPE_WAREHOUSE": lake, "PREFPIPE_EXECUTOR": "celery",
        "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/7",  # a Redis database of its own: no other test's worker takes these steps
        "PREFPIPE_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_S),
        "DAGSTER_PG_HOST": postgres.host, "DAGSTER_PG_PORT": str(postgres.port), "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_DB": instance_db, "PGPASSWORD": postgres.password,
    }
    full_env = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # dagster-celery starts `celery` from PATH
    worker_yaml = root / "celery.yaml"
    printed = subprocess.run([sys.executable, "-m", "prefpipe.defs.executors"], cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True, check=True)
    worker_yaml.write_text(printed.stdout)
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=PROJECT_ROOT, env=full_env, capture_output=True, check=True)
    subprocess.run([sys.executable, "-c", "from prefpipe.core.warehouse import connect_for_write; connect_for_write(None, {}).close()"],
                   cwd=PROJECT_ROOT, env=full_env, capture_output=True, check=True)
    made = Stack(full_env, lake, worker_yaml, logs)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():  # this process reads the instance and the lakehouse too
            mp.setenv(name, value)
        try:
            yield made
        finally:
            made.stop()


def counts(stack: Stack, batch_id: str) -> dict[str, int]:
    """Rows of the batch in each table (0 for a table not written yet)."""
    from prefpipe.core.warehouse import SCHEMA, present_tables, quote, read_only

    with read_only(stack.lake) as con:
        present = present_tables(con) if con is not None else set()
        return {t: con.execute(f"SELECT count(*) FROM {SCHEMA}.{quote(t)} WHERE batch_id = ?", [batch_id]).fetchone()[0] if t in present else 0
                for t in TABLES}


def settle(stack: Stack, instance: dg.DagsterInstance) -> dict[str, str]:
    """What the `settle_finished_runs` sensor does after a run ends."""
    from prefpipe.core.warehouse import connect_for_write
    from prefpipe.defs.warehouse_io import settle_finished_runs

    con = connect_for_write(stack.lake, {})
    try:
        return settle_finished_runs(con, instance)
    finally:
        con.close()


def run_and_kill(stack: Stack, instance: dg.DagsterInstance, batch_id: str, kill: Callable[[str, int], None]) -> dg.DagsterRun:
    """Launch the pipeline on a new batch, call kill(host, pid) once the step yields its output (the
    I/O manager is writing it), and wait for the run's process to end (a hang fails the test)."""
    make_batch(Path(stack.env["PREFPIPE_DATA_DIR"]), batch_id, n=N)
    instance.add_dynamic_partitions("batches", [batch_id])
    with (stack.logs / f"run-{batch_id}.log").open("ab") as log:
        proc = subprocess.Popen([str(BIN / "dg"), "launch", "--job", "pipeline", "--partition", batch_id],
                                cwd=PROJECT_ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        app, deadline = celery_app(stack.env), time.monotonic() + HANG_S
        running = None
        while running is None:
            assert proc.poll() is None and time.monotonic() < deadline, f"the run ended or hung before {STEP} ran (log in {stack.logs})"
            active = app.control.inspect(timeout=0.5).active() or {}
            running = next(((host, task["worker_pid"]) for host, tasks in active.items() for task in tasks
                            if STEP in task["kwargs"]["execute_step_args_packed"]["step_keys_to_execute"]), None)
        run = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}))[0]
        while not any(r.event_log_entry.dagster_event.step_key == STEP
                      for r in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT).records):
            assert proc.poll() is None and time.monotonic() < deadline, f"{STEP} never yielded its output"
            time.sleep(0.05)
        kill(*running)
        proc.wait(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run hung: still going {HANG_S:.0f} s after the worker was killed (log in {stack.logs})")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return instance.get_run_by_id(run.run_id)


def engine_events(instance: dg.DagsterInstance, run_id: str, step_key: str) -> list[dg.EventLogEntry]:
    return [e for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT) if e.step_key == step_key]


def test_the_pool_process_killed_mid_step_fails_the_run_naming_the_lost_worker(stack: Stack) -> None:
    stack.ensure_workers(("faults1", "faults2"))
    with dg.DagsterInstance.get() as instance:
        run = run_and_kill(stack, instance, "child_killed", lambda host, pid: os.kill(pid, signal.SIGKILL))
        assert run.status == dg.DagsterRunStatus.FAILURE
        failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event.event_specific_data
        message = failure.error.to_string() if failure.error else ""
        assert f"[{STEP}]: billiard.exceptions.WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL)" in message, message[-2000:]
        left = counts(stack, "child_killed")
        assert all(left[t] in (0, EXPECTED[t]) for t in TABLES), left  # all of a batch's rows or none: the killed write left nothing
        assert left["prompts"] == N and left["ai_labels"] == 0  # the steps before it wrote; the ones after never ran
        assert settle(stack, instance).get(run.run_id) == "restored"  # the failed run is put back, as the sensor does
        assert counts(stack, "child_killed") == dict.fromkeys(TABLES, 0)


def test_a_whole_worker_killed_mid_step_hands_the_step_to_another_worker(stack: Stack) -> None:
    stack.ensure_workers(("faults1", "faults2"))
    with dg.DagsterInstance.get() as instance:
        killed: list[str] = []

        def kill_worker(host: str, pid: int) -> None:
            killed.append(host)
            stack.kill_worker(host)

        run = run_and_kill(stack, instance, "worker_killed", kill_worker)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        started = [e.dagster_event.event_specific_data.metadata["Celery worker"].value for e in engine_events(instance, run.run_id, STEP)
                   if e.dagster_event.event_specific_data.metadata.get("Celery worker")]
        assert started[0] == killed[0] and len(started) >= 2 and killed[0] not in started[1:], started  # run again, on the other worker
        assert counts(stack, "worker_killed") == EXPECTED
        assert settle(stack, instance).get(run.run_id) == "kept"
        assert counts(stack, "worker_killed") == EXPECTED
        assert counts(stack, "child_killed") == dict.fromkeys(TABLES, 0)  # the other batch untouched
