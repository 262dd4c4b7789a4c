"""The one Definitions of the prefpipe code location: assets, resources, the pipeline job, the batch
sensor and the nightly schedule. Paths come from PREFPIPE_DATA_DIR when the location loads."""

import dagster as dg

from prefpipe import settings
from prefpipe.assets.annotations import human_annotations
from prefpipe.assets.costs import cost_report
from prefpipe.assets.dataset import preference_dataset
from prefpipe.assets.guidelines import guidelines
from prefpipe.assets.judge import ai_labels
from prefpipe.assets.pairs import response_pairs
from prefpipe.assets.prompts import prompts
from prefpipe.assets.quality import agreement_report, annotator_reliability, filtered_annotations, final_labels
from prefpipe.assets.routing import human_queue, routing
from prefpipe.automation import new_batch_sensor, nightly_open_batches
from prefpipe.jobs import pipeline_job
from prefpipe.llm.resource import LLMResource
from prefpipe.warehouse import SCHEMA, WarehouseIOManager

ASSETS = [
    guidelines, prompts, response_pairs, ai_labels, routing, human_queue, human_annotations,
    annotator_reliability, filtered_annotations, final_labels, agreement_report, cost_report, preference_dataset,
]


def build_definitions() -> dg.Definitions:
    """Definitions bound to the current data folder (tests build one per temporary folder)."""
    return dg.Definitions(
        assets=ASSETS,
        jobs=[pipeline_job],
        sensors=[new_batch_sensor],
        schedules=[nightly_open_batches],
        resources={
            "warehouse": WarehouseIOManager(database=str(settings.warehouse_path()), schema=SCHEMA),
            "llm": LLMResource(),
        },
    )


defs = build_definitions()
