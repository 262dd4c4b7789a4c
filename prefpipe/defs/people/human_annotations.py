"""The `human_annotations` asset: every human label of the batch."""

import dagster as dg
import pandas as pd

from prefpipe.core import schemas
from prefpipe.defs.common import BATCH_ASSET, drop_batch, md_table, user_errors, with_batch
from prefpipe.defs.people.annotation_sources import all_annotations
from prefpipe.defs.resources import AnnotationStoreResource, BatchFolders


@dg.asset(
    **BATCH_ASSET, group_name="people", deps=["human_queue"],
    ins={"response_pairs": dg.AssetIn(metadata={"columns": ["pair_id"]})},  # the pairs a label may name, not their texts
)
@user_errors
def human_annotations(
    context: dg.AssetExecutionContext, response_pairs: pd.DataFrame, batch_folders: BatchFolders, annotation_store: AnnotationStoreResource
) -> pd.DataFrame:
    """Every human label of the batch: those made in prefpipe's annotation app and those imported
    from the batch folder (annotations.jsonl, annotations/*.jsonl). Labels are in the pair's own
    A/B order and carry the guideline version they were made under; gold answers and the labels
    of annotators flagged by gold are kept and marked, and left out of final labels downstream."""
    batch_id = context.partition_key
    combined = all_annotations(batch_id, drop_batch(response_pairs)["pair_id"], batch_folders, annotation_store)
    context.add_output_metadata(
        {
            "annotations": len(combined),
            "annotators": int(combined["annotator_id"].nunique()),
            "gold_answers": int(combined["is_gold"].fillna(False).sum()),
            "flagged_labels": int(combined["flagged"].fillna(False).sum()),
            "by_source": md_table(combined.groupby("source").size().rename("labels").reset_index()),
            "by_guideline_version": md_table(combined.groupby("guideline_version").size().rename("labels").reset_index()),
        }
    )
    return with_batch(combined, schemas.HUMAN_ANNOTATIONS, batch_id, table="human_annotations")
