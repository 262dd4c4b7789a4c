"""The `final_labels` asset: one label per pair; and its check of label drift against the other
batches."""

import time
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd
import pydantic

from prefpipe import quality
from prefpipe.core import schemas
from prefpipe.core.batch_status import BatchProgress, frames_progress
from prefpipe.core.final_labels import combine_final_labels
from prefpipe.core.labels import SCALE
from prefpipe.core.settings import WAREHOUSE_SCHEMA
from prefpipe.defs.common import BATCH_ASSET, WARN, batch_check, check_md, check_threshold, drop_batch, md_image, md_table, user_errors, with_batch
from prefpipe.defs.labelling.routing import primary_labels
from prefpipe.defs.resources import GuidelinesFolder, RoutingSettings, WarehouseReader
from prefpipe.reports.completion_plot import COMPLETION_COLUMNS, completion_plot
from prefpipe.reports.plots import label_distribution_plot


class FinalLabelsConfig(dg.Config):
    method: Literal["auto", "majority", "weighted", "dawid_skene"] = pydantic.Field(
        "auto", description="How people's labels become one: auto (the measured best, Dawid-Skene today: each annotator weighted by their fitted confusion matrix), majority vote, reliability-weighted vote, or Dawid-Skene."
    )
    on_duplicate: Literal["error", "first", "last", "keep"] = pydantic.Field(
        "error", description="An annotator labelling a pair twice: fail (error), keep the first or last label, or count both (keep)."
    )


def aggregate(people: pd.DataFrame, method: str, reliability: pd.DataFrame, on_duplicate: str = "error") -> pd.DataFrame:
    """One label per pair from the people's labels, by the chosen method: the quality library's
    final_labels (auto, majority, dawid_skene), or a vote weighted by the reliability composite."""
    if people.empty:
        return pd.DataFrame({"pair_id": pd.Series(dtype="string"), "label": pd.Series(dtype="string"), "confidence": pd.Series(dtype="float64"), "n_labels": pd.Series(dtype="Int64"), "method": pd.Series(dtype="string")})
    if method == "weighted":
        weights = reliability.set_index("annotator_id")["composite"].fillna(0.0)
        return quality.weighted_vote(people, weights, categories=SCALE).assign(method=method)
    out = quality.final_labels(people, role="role", categories=SCALE, method=method, on_duplicate=on_duplicate)
    return out[out["label"].notna()].drop(columns="source")


def _columns(*names: str) -> dg.AssetIn:
    return dg.AssetIn(metadata={"columns": ["batch_id", *names]})


INPUTS = {
    "filtered_annotations": _columns("pair_id", "annotator_id", "label", "role", "guideline_version", "created_at"),
    "routing": _columns("pair_id", "route", "ai_label", "ai_confidence", "labels_wanted"),
    "ai_labels": _columns("pair_id", "judge", "label", "confidence", "guideline_version"),
}
"""What final_labels reads of each table: what the aggregators and combine_final_labels use, never the
judges' raw answers or the routing reasons (most of those tables' bytes at a million pairs)."""


@dg.asset(**BATCH_ASSET, group_name="quality", ins=INPUTS)
@user_errors
def final_labels(
    context: dg.AssetExecutionContext, config: FinalLabelsConfig, filtered_annotations: pd.DataFrame,
    annotator_reliability: pd.DataFrame, routing: pd.DataFrame, ai_labels: pd.DataFrame, routing_settings: RoutingSettings,
) -> pd.DataFrame:
    """One label per pair, for the pairs that are complete: an expert's answer is final; else the
    people's label, by default from Dawid-Skene, which weights each annotator by how often the
    evidence says they are right (run config `method`: auto, majority, weighted, dawid_skene),
    once the pair has the labels per pair routing asked for; else the AI label where it stands. Pairs still short of their labels are waiting: they get no label (nothing is
    invented), and the metadata counts them by labels received."""
    batch_id = context.partition_key
    kept = drop_batch(filtered_annotations)
    people, experts = kept[kept["role"] == "annotator"], kept[kept["role"] == "expert"]
    human_final = aggregate(people, config.method, drop_batch(annotator_reliability), config.on_duplicate)
    ai = primary_labels(drop_batch(ai_labels), routing_settings.primary_judge)
    routed = drop_batch(routing)
    final = combine_final_labels(routed, ai, human_final, experts, human_annotations=people)
    progress = frames_progress(batch_id, routed, final, kept)
    counts = {"final_ai": progress.final["ai"], "final_people": progress.final["human"] + progress.final["expert"],
              "waiting": progress.pairs_waiting}
    context.add_output_metadata(
        {
            "final_labels": len(final),
            "pairs_waiting": progress.pairs_waiting,
            "pairs_final_ai": counts["final_ai"],
            "pairs_final_people": counts["final_people"],
            "waiting_for_people": waiting_md(progress),
            "batch_status": status_md(progress),
            "completion_plot": md_image(completion_plot(completion_history(context, counts)), "completion over runs"),
            "method": config.method,
            "by_source": dg.MetadataValue.json(final["source"].value_counts().to_dict()),
            "label_distribution": dg.MetadataValue.json(final["label"].value_counts().reindex(SCALE, fill_value=0).to_dict()),
            "label_distribution_plot": md_image(label_distribution_plot({"final": final["label"], "people": people["label"], "AI": ai["label"]}), "label distribution"),
            "mean_confidence": float(final["confidence"].mean()) if len(final) else float("nan"),
        }
    )
    return with_batch(final, schemas.FINAL_LABELS, batch_id, table="final_labels")


def status_md(progress: BatchProgress) -> dg.MetadataValue:
    """The batch's progress as `prefpipe status` prints it, as a table for the metadata panel."""
    rows = [("pairs", progress.pairs), *((f"routed: {route}", n) for route, n in progress.routes.items()),
            *((f"final: {source}", n) for source, n in progress.final.items()),
            ("waiting for people", progress.pairs_waiting),
            ("labels received / wanted (waiting pairs)", f"{progress.labels_received} / {progress.labels_wanted}")]
    return md_table(pd.DataFrame(rows, columns=["", "pairs"]).astype({"pairs": "string"}))


def completion_history(context: dg.AssetExecutionContext, now: dict[str, int], runs: int = 30) -> pd.DataFrame:
    """This batch's last `runs` final_labels materializations' counts (COMPLETION_COLUMNS), this run's last.
    Runs from before the counts were recorded are left out: their figures are not known."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=runs - 1).records
    rows = []
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        if all(f"pairs_{k}" in metadata for k in ("final_ai", "final_people", "waiting")):
            rows.append({"run_at": record.timestamp, **{k: metadata[f"pairs_{k}"].value for k in ("final_ai", "final_people", "waiting")}})
    rows.append({"run_at": time.time(), **now})
    return pd.DataFrame(rows, columns=list(COMPLETION_COLUMNS))


def waiting_md(progress: BatchProgress) -> dg.MetadataValue | str:
    """The waiting pairs counted by route and labels received of wanted: a million pairs in a few rows."""
    if not progress.waiting:
        return "no pair is waiting for people"
    return md_table(pd.DataFrame(progress.waiting, columns=["route", "labels_received", "labels_wanted", "pairs"]))


def label_counts(labels: pd.Series) -> pd.Series:
    return labels.dropna().astype(str).value_counts().reindex(SCALE, fill_value=0)


def drift_result(batch_labels: pd.Series, others: pd.Series, n_other_batches: int, max_tvd: float) -> dg.AssetCheckResult:
    """Total variation distance between this batch's final-label distribution and the pooled
    distribution of the other batches, at most `max_tvd` (WARN above). TVD is the share of labels
    that would have to change to match: an effect size, where a chi-square p-value (in the
    metadata) flags tiny differences once batches are large."""
    from scipy.stats import chi2_contingency

    mine, pooled = label_counts(batch_labels), others.reindex(SCALE, fill_value=0).astype(int)
    base = {"max_label_drift_tvd": max_tvd, "labels": int(mine.sum()), "other_batches": n_other_batches, "other_labels": int(pooled.sum())}
    if mine.sum() == 0:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**base, "note": "no final labels in this batch"})
    if pooled.sum() == 0:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**base, "note": "no previous batch to compare with"})
    p, q = mine / mine.sum(), pooled / pooled.sum()
    tvd = float(0.5 * (p - q).abs().sum())
    used = (mine + pooled) > 0
    chi2, pvalue, dof, _ = chi2_contingency(np.vstack([mine[used], pooled[used]])) if used.sum() > 1 else (0.0, 1.0, 0, None)
    table = pd.DataFrame({"label": SCALE, "this_batch": p.to_numpy(), "other_batches": q.to_numpy(), "n_this": mine.to_numpy(), "n_other": pooled.to_numpy()})
    return dg.AssetCheckResult(
        passed=bool(tvd <= max_tvd), severity=WARN,
        metadata={**base, "total_variation_distance": tvd, "chi_square": float(chi2), "chi_square_p_value": float(pvalue),
                  "chi_square_dof": int(dof), "distribution": check_md(table)},
    )


def other_batches_labels(batch_id: str, database: str) -> tuple[pd.Series, int]:
    """Final labels per scale point over every other batch in the warehouse, and how many batches."""
    from prefpipe.core.warehouse import present_tables, read_only

    with read_only(database) as con:
        if con is None or "final_labels" not in present_tables(con):
            return pd.Series(dtype="int64"), 0
        where = f"FROM {WAREHOUSE_SCHEMA}.final_labels WHERE batch_id <> ? AND label IS NOT NULL"
        rows = con.execute(f"SELECT label, count(*) {where} GROUP BY label", [batch_id]).fetchall()
        n_batches = con.execute(f"SELECT count(DISTINCT batch_id) {where}", [batch_id]).fetchone()[0]
    return pd.Series({str(label): int(n) for label, n in rows}, dtype="int64"), int(n_batches)


@batch_check("final_labels")
def label_distribution_stable(
    context: dg.AssetCheckExecutionContext, final_labels: pd.DataFrame, warehouse_reader: WarehouseReader, guidelines_folder: GuidelinesFolder
) -> dg.AssetCheckResult:
    """The batch's final-label distribution is close to the other batches' pooled distribution:
    total variation distance at most `max_label_drift_tvd` (default 0.15). Drift (WARN) can be a
    new prompt mix, a different pair strategy or model, or a changed guideline; compare the
    distributions in the metadata before training on it. Passes with a note for the first batch."""
    others, n = other_batches_labels(context.partition_key, warehouse_reader.database)
    return drift_result(final_labels["label"], others, n, check_threshold(guidelines_folder.load(), "max_label_drift_tvd"))
