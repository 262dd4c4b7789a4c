"""The `human_queue` asset: what people are asked to label, loaded into the annotation app."""

import dagster as dg
import numpy as np
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.batch_inputs import GOLD_FILE
from prefpipe.core.pairs_file import read_pairs
from prefpipe.core.routing import build_human_queue
from prefpipe.defs.common import BATCH_ASSET, drop_batch, user_errors, with_batch
from prefpipe.defs.people.annotation_sources import imported_annotations
from prefpipe.defs.resources import AnnotationStoreResource, BatchFolders, GuidelinesFolder, RoutingSettings


@dg.asset(
    **BATCH_ASSET, group_name="people",
    ins={  # only the columns used: a million pairs' other columns would cost seconds to load
        "routing": dg.AssetIn(metadata={"columns": ["pair_id", "route", "reason", "ai_confidence"]}),
        "response_pairs": dg.AssetIn(metadata={"columns": ["pair_id", "prompt", "response_a", "response_b"]}),
    },
)
@user_errors
def human_queue(
    context: dg.AssetExecutionContext, routing: pd.DataFrame, response_pairs: pd.DataFrame, routing_settings: RoutingSettings,
    batch_folders: BatchFolders, guidelines_folder: GuidelinesFolder, annotation_store: AnnotationStoreResource,
) -> pd.DataFrame:
    """What people are asked to label, loaded into the annotation app's queue: expert escalations
    first, then spot checks, then the pairs routed to people (least confident first). Labels
    already imported for a pair count towards what it needs; the batch's gold questions
    (gold.jsonl: pairs with their right label) are loaded for the hidden gold checks. Re-running it
    never duplicates a task or touches an answer."""
    batch_id = context.partition_key
    g = guidelines_folder.load()  # read once: the thresholds routed by and the version recorded on the tasks
    cfg = routing_settings.rules(g, batch_folders.config(batch_id).human_budget)
    routed = drop_batch(routing)
    pairs = drop_batch(response_pairs)
    queue = build_human_queue(routed, cfg)
    imported = imported_annotations(batch_id, pairs["pair_id"], batch_folders)
    have_people = imported[imported["role"] != "expert"].groupby("pair_id").size()
    have_expert = imported[imported["role"] == "expert"].groupby("pair_id").size()
    have = np.where(queue["route"] == "expert", queue["pair_id"].map(have_expert).fillna(0), queue["pair_id"].map(have_people).fillna(0))
    queue["labels_wanted"] = np.clip(queue["labels_wanted"].to_numpy(dtype="int64") - have.astype("int64"), 0, None)
    queue["enqueued"] = queue["enqueued"] & (queue["labels_wanted"] > 0)

    todo = queue[queue["enqueued"]].merge(pairs[["pair_id", "prompt", "response_a", "response_b"]], on="pair_id")
    gold_path = batch_folders.folder(batch_id) / GOLD_FILE
    gold = read_pairs(gold_path, gold=True) if gold_path.is_file() else None
    counts = {}
    if len(todo) or gold is not None:
        with annotation_store.open() as store:
            counts = store.enqueue(
                batch_id, todo, per_item=cfg.labels_per_pair, guideline_version=g.version, rubric=g.rubric_dict(),
                gold=gold, dimension_scale=g.dimension_scale,
            )
    context.add_output_metadata(
        {
            "tasks_enqueued": int(queue["enqueued"].sum()),
            "labels_wanted": int(queue.loc[queue["enqueued"], "labels_wanted"].sum()),
            "labels_per_pair": cfg.labels_per_pair,
            "already_labelled_by_import": int((~queue["enqueued"] & (queue["route"] != "over_budget")).sum()),
            "gold_pairs": 0 if gold is None else len(gold),
            "store": dg.MetadataValue.json(counts),
        }
    )
    return with_batch(queue, schemas.HUMAN_QUEUE, batch_id, table="human_queue")
