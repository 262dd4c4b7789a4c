"""The main job: every stage for one batch. Its executor is the code location's (prefpipe.defs.executors):
in one process with the DuckDB file, parallel or on Celery workers with the lakehouse."""

import dagster as dg

pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    description="Takes one batch from prompts to the preference dataset, with its reports.",
)
