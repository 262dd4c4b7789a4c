"""The `human_queue` asset: what people are asked to label, loaded into the annotation app."""

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from prefpipe.core import schemas
from prefpipe.core.batch_inputs import GOLD_FILE
from prefpipe.core.pairs_file import read_pairs
from prefpipe.core.routing import build_human_queue
from prefpipe.core.warehouse import SCHEMA, fetch_frame, read_only
from prefpipe.defs.common import BATCH_ASSET, drop_batch, user_errors, with_batch
from prefpipe.defs.people.annotation_sources import imported_annotations
from prefpipe.defs.resources import AnnotationStoreResource, BatchFolders, GuidelinesFolder, RoutingSettings, WarehouseReader


@dg.asset(
    **BATCH_ASSET, group_name="people",
    ins={  # only the columns used: a million pairs' other columns would cost seconds to load
        "routing": dg.AssetIn(metadata={"columns": ["pair_id", "route", "reason", "ai_confidence", "labels_wanted"]}),
        "response_pairs": dg.AssetIn(metadata={"columns": ["pair_id"]}),  # the texts of the pairs queued: _with_texts
    },
)
@user_errors
def human_queue(
    context: dg.AssetExecutionContext, routing: pd.DataFrame, response_pairs: pd.DataFrame, routing_settings: RoutingSettings,
    batch_folders: BatchFolders, guidelines_folder: GuidelinesFolder, annotation_store: AnnotationStoreResource,
    warehouse_reader: WarehouseReader,
) -> pd.DataFrame:
    """What people are asked to label, loaded into the annotation app's queue: expert escalations
    first, then spot checks, then the pairs routed to people (least confident first). Labels
    already imported for a pair count towards what it needs; the batch's gold questions
    (gold.jsonl: pairs with their right label) are loaded for the hidden gold checks. Re-running it
    never duplicates a task or touches an answer."""
    batch_id = context.partition_key
    g = guidelines_folder.load()  # read once: the thresholds routed by and the version recorded on the tasks
    cfg = routing_settings.rules(g, batch_folders.config(batch_id))
    routed = drop_batch(routing)
    pairs = drop_batch(response_pairs)
    queue = build_human_queue(routed, cfg)
    imported = imported_annotations(batch_id, pairs["pair_id"], batch_folders)
    have_people = imported[imported["role"] != "expert"].groupby("pair_id").size()
    have_expert = imported[imported["role"] == "expert"].groupby("pair_id").size()
    have = np.where(queue["route"] == "expert", queue["pair_id"].map(have_expert).fillna(0), queue["pair_id"].map(have_people).fillna(0))
    queue["labels_wanted"] = np.clip(queue["labels_wanted"].to_numpy(dtype="int64") - have.astype("int64"), 0, None)
    queue["enqueued"] = queue["enqueued"] & (queue["labels_wanted"] > 0)

    todo = _with_texts(warehouse_reader, batch_id, queue[queue["enqueued"]])
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


def _with_texts(reader: WarehouseReader, batch_id: str, todo: pd.DataFrame) -> pd.DataFrame:
    """The rows to enqueue with their pairs' texts, in their order (as an inner merge on pair_id
    gives them): joined in DuckDB, so of a million-pair batch only the queued pairs' texts come into
    Python, and in Arrow."""
    if todo.empty:  # no pairs routed to people (or none at all): nothing to read
        return todo.assign(**{col: pd.Series(dtype="string") for col in ("prompt", "response_a", "response_b")})
    wanted = pa.table({"pair_id": pa.array(todo["pair_id"], pa.large_string()), "row": np.arange(len(todo))})
    with read_only(reader.database) as con:
        con.register("wanted", wanted)
        texts = fetch_frame(con, f"""SELECT w.row, p.prompt, p.response_a, p.response_b
                                     FROM wanted w JOIN {SCHEMA}.response_pairs p ON p.pair_id = w.pair_id AND p.batch_id = ?
                                     ORDER BY w.row""", [batch_id])
    rows = todo.iloc[texts["row"].to_numpy()].reset_index(drop=True)
    return pd.concat([rows, texts.drop(columns=["row"])], axis=1)
