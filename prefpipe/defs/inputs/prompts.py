"""The `prompts` asset: a batch's prompts, read and validated with every other input file of the batch."""

import dagster as dg
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.batch_inputs import validate_batch_inputs
from prefpipe.core.batches import PROMPTS_FILE
from prefpipe.defs.common import BATCH_ASSET, user_errors, with_batch
from prefpipe.defs.resources import BatchFolders
from prefpipe.generation.config import GenerationConfig

PAIRS_ASSET = "response_pairs"


def pair_strategy(context: dg.AssetExecutionContext) -> str | None:
    """The strategy response_pairs uses in this run (its run config, else the default), or None
    when this run does not make the pairs (then no pair id can be checked yet)."""
    selection = context.run.asset_selection
    if selection is not None and dg.AssetKey(PAIRS_ASSET) not in selection:
        return None
    config = ((context.run_config or {}).get("ops") or {}).get(PAIRS_ASSET, {}).get("config") or {}
    return config.get("strategy", GenerationConfig.model_fields["strategy"].default)


@dg.asset(**BATCH_ASSET, group_name="inputs")
@user_errors
def prompts(context: dg.AssetExecutionContext, batch_folders: BatchFolders) -> pd.DataFrame:
    """The batch's prompts, read from data/batches/<batch>/prompts.jsonl and validated.

    Every input file of the batch is checked here first (batch.json, prompts.jsonl, the imported
    ai_labels.jsonl and annotations, gold.jsonl; with the existing strategy, that each imported
    label names a pair the prompts make). A malformed line, a missing prompt, a duplicate id or a
    bad label fails the batch here, with a message naming the file, the line and the field,
    before any table of the run is written.
    """
    batch_id = context.partition_key
    folder = batch_folders.folder(batch_id)
    report = validate_batch_inputs(folder, strategy=pair_strategy(context))
    context.add_output_metadata({
        "prompts": len(report.prompts), "with_existing_responses": int((report.candidates >= 2).sum()),
        "imported_verdicts": report.ai_labels, "imported_annotations": report.annotations, "gold_pairs": report.gold,
        "source": str(folder / PROMPTS_FILE),
    })
    return with_batch(report.prompts, schemas.PROMPTS, batch_id, table="prompts")
