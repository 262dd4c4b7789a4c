"""The one Definitions of the prefpipe code location: assets, asset checks, resources, the pipeline
job, the batch sensor, the nightly schedule and the guideline-change automation. Paths come from
PREFPIPE_DATA_DIR when the location loads."""

import dagster as dg

from prefpipe import settings
from prefpipe.assets.annotations import human_annotations
from prefpipe.assets.costs import cost_report
from prefpipe.assets.dataset import preference_dataset, published_dataset
from prefpipe.assets.guidelines import guidelines
from prefpipe.assets.judge import ai_labels
from prefpipe.assets.pairs import response_pairs
from prefpipe.assets.prompts import prompts
from prefpipe.assets.quality import agreement_report, annotator_reliability, filtered_annotations, final_labels
from prefpipe.assets.routing import human_queue, routing
from prefpipe.automation import guideline_automation_sensor, new_batch_sensor, nightly_open_batches, with_guideline_automation
from prefpipe.checks import CHECKS
from prefpipe.jobs import pipeline_job
from prefpipe.llm.resource import LLMResource
from prefpipe.warehouse import SCHEMA, WarehouseIOManager

ASSETS = with_guideline_automation([
    guidelines, prompts, response_pairs, ai_labels, routing, human_queue, human_annotations,
    annotator_reliability, filtered_annotations, final_labels, agreement_report, cost_report, preference_dataset,
    published_dataset,
])


def build_definitions() -> dg.Definitions:
    """Definitions bound to the current data folder (tests build one per temporary folder)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[pipeline_job],
        sensors=[new_batch_sensor, guideline_automation_sensor],
        schedules=[nightly_open_batches],
        resources={
            "warehouse": WarehouseIOManager(database=str(settings.warehouse_path()), schema=SCHEMA),
            "llm": LLMResource(),
        },
        executor=dg.in_process_executor,  # automation and UI runs too: DuckDB takes one writing process
    )


defs = build_definitions()
