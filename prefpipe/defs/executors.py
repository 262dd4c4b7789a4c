"""How a run's steps execute. A DuckDB file takes one writing process, so with it every run's steps
run in the run's own process. With the lakehouse (PREFPIPE_WAREHOUSE=ducklake:...) steps may run
in parallel processes (`multiprocess`) or on Celery workers that share nothing with the run but
PostgreSQL, Redis and the data folder (`celery`, broker REDIS_URL): PREFPIPE_EXECUTOR chooses.

A Celery worker killed during a step: dagster-celery's run loop only waits for the step's result,
so with Celery's default (the message acked as the step starts) a step whose whole worker died is
lost and the run waits forever. The settings below (`celery_settings`, shared by the run and the
workers: `python -m prefpipe.defs.executors` prints the workers' `-y` file) ack the message after
the step instead: PREFPIPE_CELERY_VISIBILITY_TIMEOUT seconds after it was delivered, a live worker
puts it back in the queue and the step runs again (each warehouse write is one transaction, so the
killed attempt left nothing). A pool process killed alone (the kernel's OOM killer) fails the run
at once with Celery's `WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL)`: run again,
it would be killed again, forever."""

from __future__ import annotations

import os

import dagster as dg

from prefpipe.core.warehouse_target import WarehouseTarget
from prefpipe.errors import PrefpipeError

EXECUTOR_ENV = "PREFPIPE_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery")
VISIBILITY_ENV = "PREFPIPE_CELERY_VISIBILITY_TIMEOUT"
VISIBILITY_DEFAULT = 3600
"""Seconds before Redis hands an unacknowledged step to another worker: longer than the longest step
(a step still running then would run twice), and how long a run waits after a worker died."""


def executor_choice(warehouse: WarehouseTarget) -> str:
    choice = os.environ.get(EXECUTOR_ENV, "in_process")
    if choice not in EXECUTORS:
        raise PrefpipeError(f"{EXECUTOR_ENV}={choice!r}: expected one of {', '.join(EXECUTORS)}")
    if choice != "in_process" and not warehouse.is_lakehouse:
        raise PrefpipeError(
            f"{EXECUTOR_ENV}={choice}: the DuckDB file {warehouse.display} takes one writing process; parallel steps "
            "need the lakehouse (PREFPIPE_WAREHOUSE=ducklake:postgresql://...), see docs/team.md")
    return choice


def visibility_timeout() -> int:
    raw = os.environ.get(VISIBILITY_ENV, str(VISIBILITY_DEFAULT))
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise PrefpipeError(f"{VISIBILITY_ENV}={raw!r}: expected a whole number of seconds above 0 (default {VISIBILITY_DEFAULT})")
    return seconds


def celery_settings() -> dict[str, object]:
    """Celery settings (dagster-celery's `config_source`) of the run and of every worker: the worker
    decides when a message is acknowledged, so the workers must be started with them."""
    from dagster_celery.defaults import broker_transport_options

    seconds = visibility_timeout()
    return {
        "task_acks_late": True,  # acked when the step ends: a message whose worker died goes back to the queue
        "task_reject_on_worker_lost": False,  # a pool process killed alone fails its step (Celery's WorkerLostError), no loop
        "worker_deduplicate_successful_tasks": True,  # a step delivered again after it succeeded is not run twice
        "broker_transport_options": {
            **broker_transport_options,  # dagster-celery's publish retries, which a config_source of its own replaces
            "visibility_timeout": seconds,
            "unacked_restore_interval": max(1, min(60, seconds // 10)),  # how often a live worker looks for abandoned steps
            "unacked_restore_throttle": 1,
        },
    }


def celery_broker() -> str:
    broker = os.environ.get("REDIS_URL")
    if not broker:
        raise PrefpipeError(f"{EXECUTOR_ENV}=celery needs REDIS_URL, the Celery broker (e.g. redis://127.0.0.1:6379/0)")
    return broker


def celery_config() -> dict[str, object]:
    """The celery executor's config, which is also the block `dagster-celery worker start -y` reads."""
    broker = celery_broker()
    return {"broker": broker, "backend": broker, "config_source": celery_settings()}


def pipeline_executor(warehouse: WarehouseTarget) -> dg.ExecutorDefinition:
    """The executor of every run of this code location."""
    choice = executor_choice(warehouse)
    if choice == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": int(os.environ.get("PREFPIPE_MAX_CONCURRENT_STEPS", "4"))})
    if choice == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config())
    return dg.in_process_executor


def worker_config_yaml() -> str:
    """The workers' config file (`dagster-celery worker start -A dagster_celery.app -y FILE`)."""
    import yaml

    return yaml.safe_dump({"execution": {"config": celery_config()}}, sort_keys=False)


if __name__ == "__main__":
    import sys

    try:
        print(worker_config_yaml(), end="")
    except PrefpipeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
