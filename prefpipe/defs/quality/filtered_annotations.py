"""The `filtered_annotations` asset: the human labels that count towards final labels."""

import dagster as dg
import pandas as pd

from prefpipe.core import schemas
from prefpipe.defs.common import BATCH_ASSET, drop_batch, user_errors, with_batch
from prefpipe.quality.reliability import filter_annotations


@dg.asset(**BATCH_ASSET, group_name="quality")
@user_errors
def filtered_annotations(context: dg.AssetExecutionContext, human_annotations: pd.DataFrame, annotator_reliability: pd.DataFrame) -> pd.DataFrame:
    """The human labels that count towards final labels: annotators the gold questions flagged are
    left out (their labels stay in human_annotations, marked), and so are gold answers (gold pairs
    are checks, not data). Everyone else counts, weighted by final_labels' Dawid-Skene fit rather
    than dropped under a reliability threshold. Experts' answers pass through."""
    batch_id = context.partition_key
    everything = drop_batch(human_annotations)
    labelled = everything[everything["label"].notna() & ~everything["is_gold"].fillna(False).astype(bool)]
    people, experts = labelled[labelled["role"] == "annotator"], labelled[labelled["role"] == "expert"]
    if people.empty:
        kept, summary = people, {"labels_dropped": 0, "items_dropped": 0, "annotators_dropped": 0, "dropped_annotators": []}
    else:
        kept, summary = filter_annotations(people, drop_batch(annotator_reliability))
    out = pd.concat([kept, experts], ignore_index=True)
    context.add_output_metadata(
        {
            "labels_kept": len(out),
            "gold_answers_left_out": int(everything["is_gold"].fillna(False).sum()),
            "labels_dropped": int(summary["labels_dropped"]),
            "pairs_left_without_label": int(summary["items_dropped"]),
            "annotators_dropped": dg.MetadataValue.json(list(map(str, summary["dropped_annotators"]))),
        }
    )
    return with_batch(out, schemas.HUMAN_ANNOTATIONS, batch_id, table="filtered_annotations")
