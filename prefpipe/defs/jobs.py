"""The main job: every stage for one batch, in one process (DuckDB takes one writer at a time)."""

import dagster as dg

pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Takes one batch from prompts to the preference dataset, with its reports.",
)
