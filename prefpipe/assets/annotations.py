import pandas as pd

import dagster as dg

from prefpipe import schemas, settings
from prefpipe.assets._common import BATCH_ASSET, drop_batch, md_table, with_batch
from prefpipe.batches import load_batch_config
from prefpipe.imports import annotation_files, import_human_annotations


def imported_annotations(batch_id: str, known_pairs: set[str]) -> pd.DataFrame:
    """Human labels made elsewhere, from the batch folder."""
    folder = settings.batch_dir(batch_id)
    return import_human_annotations(annotation_files(folder), load_batch_config(folder), known_pairs=known_pairs)


def app_annotations(batch_id: str) -> pd.DataFrame:
    """Labels made in prefpipe's annotation app, read from its store in one short transaction."""
    path = settings.annotation_store_path()
    if not path.exists():
        return schemas.empty(schemas.HUMAN_ANNOTATIONS)
    from prefpipe.annotate.store import AnnotationStore

    with AnnotationStore(path) as store:
        return store.annotations(batch_id)


def all_annotations(batch_id: str, known_pairs: set[str]) -> pd.DataFrame:
    frames = [f for f in (imported_annotations(batch_id, known_pairs), app_annotations(batch_id)) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else schemas.empty(schemas.HUMAN_ANNOTATIONS)


@dg.asset(**BATCH_ASSET, group_name="people", deps=["human_queue"])
def human_annotations(context: dg.AssetExecutionContext, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """Every human label of the batch: those made in prefpipe's annotation app and those imported
    from the batch folder (annotations.jsonl, annotations/*.jsonl). Labels are in the pair's own
    A/B order and carry the guideline version they were made under; gold answers and the labels
    of annotators flagged by gold are kept and marked, and left out of final labels downstream."""
    batch_id = context.partition_key
    combined = all_annotations(batch_id, set(drop_batch(response_pairs)["pair_id"]))
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
