"""How batches start running without anyone clicking: a sensor for new batch folders, a nightly
schedule for open batches, and the automation that relabels batches after a guideline change.
All are on as soon as `dg dev` starts."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from prefpipe.defs.jobs import pipeline_job
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import BatchFolders


@dg.sensor(job=pipeline_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def new_batch_sensor(context: dg.SensorEvaluationContext, batch_folders: BatchFolders) -> dg.SensorResult | dg.SkipReason:
    """Registers each new folder under data/batches/ (holding a prompts.jsonl) as a batch
    partition and runs the pipeline on it once."""
    on_disk = batch_folders.batch_ids()
    known = set(context.instance.get_dynamic_partitions(batches.name))
    new = [b for b in on_disk if b not in known]
    if not new:
        return dg.SkipReason(f"no new batch folder ({len(on_disk)} known)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=b, run_key=f"new-batch:{b}") for b in new],
        dynamic_partitions_requests=[batches.build_add_request(new)],
    )


@dg.schedule(job=pipeline_job, cron_schedule="0 2 * * *", execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_open_batches(context: dg.ScheduleEvaluationContext, batch_folders: BatchFolders):
    """Every night, reruns each registered batch that is still open (batch.json without
    "closed": true), so annotations that arrived during the day reach final labels and reports."""
    known = set(context.instance.get_dynamic_partitions(batches.name))
    day = (context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d")
    open_ids = [b for b in batch_folders.open_batch_ids() if b in known]
    if not open_ids:
        return dg.SkipReason("no open batch is registered")
    return [dg.RunRequest(partition_key=b, run_key=f"nightly:{day}:{b}") for b in open_ids]


GUIDELINES = dg.AssetKey("guidelines")
GUIDELINE_CONTENT_CHANGED = (
    dg.AutomationCondition.any_deps_match(dg.AutomationCondition.data_version_changed())
    .allow(dg.AssetSelection.assets(GUIDELINES))
    .with_label("guideline content changed")
)
"""True when the guidelines asset was materialized with a new data version, i.e. new content (its
data version is the content hash): rematerializing unchanged guidelines never sets it, unlike
eager(), which fires on every rematerialization."""

RELABEL_ON_GUIDELINE_CHANGE = (
    GUIDELINE_CONTENT_CHANGED.since_last_handled()
    & ~dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.in_progress()
).with_label("relabel batches made under older guidelines")
"""On ai_labels (and judge_calls, made by the same step): every batch already labelled is
requested once after the guidelines' content changes; batches never run are left to the sensor."""

REBUILD_WITH_RELABEL = (
    dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
    & ~dg.AutomationCondition.in_progress()
).with_label("rebuilt in the same run as its relabelled batch")
"""On every stage downstream of ai_labels: requested with the batch's relabel, so routing, people's
queue, final labels, reports and the export are rebuilt in the same run; nothing else triggers it."""


def with_guideline_automation(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets with the relabel condition on ai_labels and the follow-on condition downstream."""
    relabel = {dg.AssetKey("ai_labels"), dg.AssetKey("judge_calls")}
    downstream = dg.AssetSelection.assets("ai_labels").downstream(include_self=False).resolve(assets) - relabel

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key in relabel:
            return spec.replace_attributes(automation_condition=RELABEL_ON_GUIDELINE_CHANGE)
        if spec.key in downstream:
            return spec.replace_attributes(automation_condition=REBUILD_WITH_RELABEL)
        return spec

    return dg.map_asset_specs(attach, assets)


guideline_automation_sensor = dg.AutomationConditionSensorDefinition(
    "relabel_on_guideline_change",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags={"prefpipe/trigger": "guideline change"},
    description="Evaluates the automation conditions: when the guidelines asset is materialized with new content, "
    "every labelled batch is relabelled and rebuilt (one run per batch, as one backfill). On by default.",
)
