"""Runs whose process died: a run killed with SIGKILL (or lost with its machine) stays STARTED in
the Dagster instance forever, the run queue counts it as in progress, and every sensor, schedule
and backfill run waits behind it. Dagster's own run monitoring cannot see a dead worker of the
default run launcher, so prefpipe checks the process itself.

A run is checked when its process can be: `prefpipe run` tags its runs with the host and pid, and
runs launched by the default run launcher (the daemon's, on this machine) record the pid of the
run worker in their events. A run whose process is gone is marked failed (with the reason), which
frees its place in the queue and lets the warehouse put back what it had written.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

HOST_TAG = "prefpipe/host"
PID_TAG = "prefpipe/pid"
ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """Tags that let a later check see whether this process is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: alive as far as we can tell
    return True


def _run_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid of the process running `run`, when it runs on this machine."""
    tags = run.tags or {}
    if HOST_TAG in tags:
        return int(tags[PID_TAG]) if tags[HOST_TAG] == socket.gethostname() and tags.get(PID_TAG, "").isdigit() else None
    from dagster._core.launcher import DefaultRunLauncher

    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return None  # another launcher (Celery, Kubernetes) runs elsewhere: its own monitoring applies
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None and event.pid else None


def fail_runs_whose_process_died(instance: dg.DagsterInstance) -> list[str]:
    """Mark every active run whose process is gone as failed; returns their run ids."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)):
        pid = _run_pid(instance, run)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        instance.report_run_failed(run, f"the process running it (pid {pid} on {socket.gethostname()}) is gone: it was killed or crashed")
        failed.append(run.run_id)
    return failed
