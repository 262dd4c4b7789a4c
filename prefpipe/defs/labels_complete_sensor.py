"""The sensor that runs a batch when people have finished labelling it (prefpipe.core.labels_arrival)."""

from __future__ import annotations

import time

import dagster as dg

from prefpipe.core.labels_arrival import PARTIAL_EVERY_S, due_runs
from prefpipe.defs.jobs import pipeline_job
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import AnnotationStoreResource


@dg.sensor(job=pipeline_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def labels_complete_sensor(context: dg.SensorEvaluationContext, annotation_store: AnnotationStoreResource) -> dg.SensorResult | dg.SkipReason:
    """Runs a batch as soon as its queue in the annotation app has every label it wanted, so its
    complete pairs become final and are published without waiting for the nightly run; while labels
    are still arriving, at most once an hour. Reads only the annotation store (never the warehouse)."""
    if not annotation_store.exists():
        return dg.SkipReason("no annotation store yet: nothing has been queued for people")
    with annotation_store.open() as store:
        queues = store.queue_progress()
    registered = set(context.instance.get_dynamic_partitions(batches.name))
    due, cursor = due_runs(queues, registered, context.cursor, time.time(), PARTIAL_EVERY_S)
    if not due:
        return dg.SensorResult(skip_reason=f"no new labels to act on ({len(queues)} queue(s) looked at)", cursor=cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=d.batch_id, run_key=d.run_key, tags={"prefpipe/trigger": d.reason}) for d in due],
        cursor=cursor,
    )
