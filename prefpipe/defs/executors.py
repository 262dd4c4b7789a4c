"""How a run's steps execute. A DuckDB file takes one writing process, so with it every run's steps
run in the run's own process. With the lakehouse (PREFPIPE_WAREHOUSE=ducklake:...) steps may run
in parallel processes (`multiprocess`) or on Celery workers that share nothing with the run but
PostgreSQL, Redis and the data folder (`celery`, broker REDIS_URL): PREFPIPE_EXECUTOR chooses."""

from __future__ import annotations

import os

import dagster as dg

from prefpipe.core.warehouse_target import WarehouseTarget
from prefpipe.errors import PrefpipeError

EXECUTOR_ENV = "PREFPIPE_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery")


def executor_choice(warehouse: WarehouseTarget) -> str:
    choice = os.environ.get(EXECUTOR_ENV, "in_process")
    if choice not in EXECUTORS:
        raise PrefpipeError(f"{EXECUTOR_ENV}={choice!r}: expected one of {', '.join(EXECUTORS)}")
    if choice != "in_process" and not warehouse.is_lakehouse:
        raise PrefpipeError(
            f"{EXECUTOR_ENV}={choice}: the DuckDB file {warehouse.display} takes one writing process; parallel steps "
            "need the lakehouse (PREFPIPE_WAREHOUSE=ducklake:postgresql://...), see docs/team.md")
    return choice


def pipeline_executor(warehouse: WarehouseTarget) -> dg.ExecutorDefinition:
    """The executor of every run of this code location."""
    choice = executor_choice(warehouse)
    if choice == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": int(os.environ.get("PREFPIPE_MAX_CONCURRENT_STEPS", "4"))})
    if choice == "celery":
        from dagster_celery import celery_executor

        broker = os.environ.get("REDIS_URL")
        if not broker:
            raise PrefpipeError(f"{EXECUTOR_ENV}=celery needs REDIS_URL, the Celery broker (e.g. redis://127.0.0.1:6379/0)")
        return celery_executor.configured({"broker": broker, "backend": broker})
    return dg.in_process_executor
