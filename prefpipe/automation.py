"""How batches start running without anyone clicking: a sensor for new batch folders and a
nightly schedule for open batches. Both are on as soon as `dagster dev` starts."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from prefpipe import batches as batch_folders
from prefpipe.jobs import pipeline_job
from prefpipe.partitions import batches


@dg.sensor(job=pipeline_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def new_batch_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Registers each new folder under data/batches/ (holding a prompts.jsonl) as a batch
    partition and runs the pipeline on it once."""
    on_disk = batch_folders.list_batches()
    known = set(context.instance.get_dynamic_partitions(batches.name))
    new = [b for b in on_disk if b not in known]
    if not new:
        return dg.SkipReason(f"no new batch folder ({len(on_disk)} known)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=b, run_key=f"new-batch:{b}") for b in new],
        dynamic_partitions_requests=[batches.build_add_request(new)],
    )


@dg.schedule(job=pipeline_job, cron_schedule="0 2 * * *", execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_open_batches(context: dg.ScheduleEvaluationContext):
    """Every night, reruns each registered batch that is still open (batch.json without
    "closed": true), so annotations that arrived during the day reach final labels and reports."""
    known = set(context.instance.get_dynamic_partitions(batches.name))
    day = (context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d")
    open_ids = [b for b in batch_folders.open_batches() if b in known]
    if not open_ids:
        return dg.SkipReason("no open batch is registered")
    return [dg.RunRequest(partition_key=b, run_key=f"nightly:{day}:{b}") for b in open_ids]
