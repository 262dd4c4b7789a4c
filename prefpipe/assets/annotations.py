import pandas as pd

import dagster as dg

from prefpipe import schemas, settings
from prefpipe.assets._common import BATCH_ASSET, drop_batch, md_table, with_batch
from prefpipe.batches import load_batch_config
from prefpipe.imports import annotation_files, import_human_annotations


@dg.asset(**BATCH_ASSET, group_name="people", deps=["human_queue"])
def human_annotations(context: dg.AssetExecutionContext, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """Every human label of the batch: those made in prefpipe's annotation app (read from its
    store in a short transaction) and those imported from the batch folder (annotations.jsonl,
    annotations/*.jsonl). Labels are in the pair's own A/B order, with the guideline version they
    were made under; gold answers and flagged annotators' labels are kept and marked."""
    from prefpipe.annotate.store import AnnotationStore

    batch_id = context.partition_key
    folder = settings.batch_dir(batch_id)
    known = set(response_pairs["pair_id"])
    files = annotation_files(folder)
    imported = import_human_annotations(files, load_batch_config(folder), known_pairs=known)
    from_app = AnnotationStore(settings.annotation_store_path()).annotations(batch_id) if settings.annotation_store_path().exists() else schemas.empty(schemas.HUMAN_ANNOTATIONS)
    frames = [f for f in (imported, from_app) if not f.empty]
    combined = pd.concat(frames, ignore_index=True) if frames else schemas.empty(schemas.HUMAN_ANNOTATIONS)
    by_source = combined.groupby("source").size().rename("labels").reset_index() if not combined.empty else pd.DataFrame()
    context.add_output_metadata(
        {
            "annotations": len(combined),
            "annotators": int(combined["annotator_id"].nunique()),
            "gold_answers": int(combined["is_gold"].fillna(False).sum()),
            "flagged_labels": int(combined["flagged"].fillna(False).sum()),
            "by_source": md_table(by_source),
            "by_guideline_version": md_table(combined.groupby("guideline_version").size().rename("labels").reset_index() if not combined.empty else pd.DataFrame()),
        }
    )
    return with_batch(combined, schemas.HUMAN_ANNOTATIONS, batch_id, table="human_annotations")
