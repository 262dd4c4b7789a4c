"""Asset checks: what stops a bad batch before anyone trains on it.

Every per-batch check is partitioned like its asset (one result per batch, shown per partition in
the UI; `partitions_def` on checks is a preview feature of Dagster 1.13) and runs in the same run
as its asset: the `pipeline` job, a backfill or an automation run executes the checks of the
assets it materializes. Each check takes its asset's value for the run's batch (through the
warehouse I/O manager) and, where it compares with other batches, reads the warehouse briefly in a
read-only connection; none holds a lock.

Thresholds come from the rubric (data/guidelines/rubric.json `thresholds`), with the defaults in
THRESHOLD_DEFAULTS. The evaluation functions (`*_result`) are plain functions over DataFrames so
they can be tested without a run.
"""

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

import dagster as dg

from prefpipe import schemas
from prefpipe.guidelines import load_guidelines
from prefpipe.labels import SCALE
from prefpipe.partitions import batches
from prefpipe.reports.markdown import table_md
from prefpipe.routing import SpotCheckEstimate
from prefpipe.stale_cli import STALE_CHECK

THRESHOLD_DEFAULTS: dict[str, float] = {
    "min_krippendorff_alpha": 0.667,
    "max_unparsed_rate": 0.10,
    "max_position_inconsistent_rate": 0.20,
    "max_label_drift_tvd": 0.15,
    "max_spot_check_disagreement": 0.15,
}
"""rubric.json `thresholds` names the checks read, and their defaults."""

WARN = dg.AssetCheckSeverity.WARN


def threshold(name: str) -> float:
    return load_guidelines().threshold(name, THRESHOLD_DEFAULTS[name])


def batch_check(asset: str, **kwargs) -> Callable:
    """@dg.asset_check partitioned by batch, like every per-batch asset."""

    def wrap(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)  # partitions_def on a check is preview in 1.13
            return dg.asset_check(asset=asset, partitions_def=batches, **kwargs)(fn)

    return wrap


def _md(df: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(table_md(df, floatfmt=".3f"))


def _rate(k: int, n: int) -> float:
    return k / n if n else float("nan")


# ------------------------------------------------------------------------------------------------
# agreement_report: Krippendorff's alpha against the guideline's threshold


def alpha_result(report: pd.DataFrame, min_alpha: float) -> dg.AssetCheckResult:
    """Ordinal Krippendorff's alpha of the batch at or above `min_alpha` (WARN under it)."""
    rows = report[(report["metric"] == "krippendorff_alpha_ordinal") & (report["scope"] == "batch")]
    base = {"threshold": min_alpha}
    if rows.empty:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**base, "note": "no human labels to measure agreement on"})
    row = rows.iloc[0]
    value = float(row["value"]) if pd.notna(row["value"]) else float("nan")
    metadata = {
        **base,
        "krippendorff_alpha_ordinal": value,
        "ci_95": f"{row['ci_low']:.3f}-{row['ci_high']:.3f}" if pd.notna(row["ci_low"]) else "n/a",
        "pairs": int(row["n_items"]) if pd.notna(row["n_items"]) else 0,
        "band": str(row["band"]) if pd.notna(row["band"]) else "n/a",
        "interpretation": str(row["interpretation"]) if pd.notna(row["interpretation"]) else "n/a",
    }
    if np.isnan(value):
        return dg.AssetCheckResult(passed=False, severity=WARN, metadata={**metadata, "note": "alpha could not be computed (too few pairs with two or more labels)"})
    return dg.AssetCheckResult(passed=bool(value >= min_alpha), severity=WARN, metadata=metadata)


@batch_check("agreement_report")
def krippendorff_alpha_meets_guideline(agreement_report: pd.DataFrame) -> dg.AssetCheckResult:
    """Krippendorff's alpha (ordinal) of the people who count is at least the guideline's
    `min_krippendorff_alpha` (default 0.667). Under it (WARN): read the band in the metadata;
    moderate or worse means the guidelines or the task need work before the labels are trusted."""
    return alpha_result(agreement_report, threshold("min_krippendorff_alpha"))


# ------------------------------------------------------------------------------------------------
# annotator_reliability: annotators flagged by gold


def gold_flag_result(reliability: pd.DataFrame, human_annotations: pd.DataFrame, current_guideline: str) -> dg.AssetCheckResult:
    """No annotator flagged by gold (WARN listing them, with how many of their gold answers were
    made under an older guideline, and how many gold answers of the batch await a key re-check)."""
    flagged = reliability[reliability["gold_flagged"].fillna(False).astype(bool)]
    gold = human_annotations[human_annotations["is_gold"].fillna(False).astype(bool)]
    old = gold["guideline_version"].astype("string").ne(current_guideline).fillna(True)
    old_by = gold[old].groupby("annotator_id").size()
    table = flagged[["annotator_id", "gold_answers", "gold_accuracy", "composite", "n_labels"]].assign(
        gold_under_older_guideline=flagged["annotator_id"].map(old_by).fillna(0).astype(int)
    )
    metadata = {
        "annotators": len(reliability),
        "flagged": dg.MetadataValue.json(sorted(map(str, flagged["annotator_id"]))),
        "flagged_table": _md(table),
        "gold_answers_under_older_guideline": int(old.sum()),
        "gold_answers_awaiting_recheck": int((gold["label"].notna() & gold["gold_label"].isna()).sum()),
    }
    notes = []
    if len(flagged) and int(table["gold_under_older_guideline"].sum()):
        notes.append("some flagged annotators answered gold under an older guideline (scored against that version's "
                     "keys): look at those answers before acting on the flag")
    if metadata["gold_answers_awaiting_recheck"]:
        notes.append("some gold answers were given to keys written under another guideline version: they count for "
                     "no one until an expert re-checks the keys (prefpipe gold list --stale)")
    if notes:
        metadata["note"] = "; ".join(notes) + " (docs/operations.md, gold re-check policy)"
    return dg.AssetCheckResult(passed=flagged.empty, severity=WARN, metadata=metadata)


@batch_check("annotator_reliability", additional_ins={"human_annotations": dg.AssetIn("human_annotations")})
def no_annotator_flagged_by_gold(annotator_reliability: pd.DataFrame, human_annotations: pd.DataFrame) -> dg.AssetCheckResult:
    """No annotator of the batch is flagged by the gold rule (5+ gold answers, under 60% right).
    Failing (WARN) lists them: their labels are already left out of final labels; review them in
    the annotation app (unflag there if the gold items were wrong)."""
    return gold_flag_result(annotator_reliability, human_annotations, load_guidelines().version)


# ------------------------------------------------------------------------------------------------
# ai_labels: readable and position-consistent verdicts; labels under current versions


def judge_quality_result(ai_labels: pd.DataFrame, max_unparsed: float, max_inconsistent: float) -> dg.AssetCheckResult:
    """Per judge: unparsed rate over all verdicts and position-inconsistent rate over verdicts
    judged in both orders, each at most its threshold (WARN above)."""
    base = {"max_unparsed_rate": max_unparsed, "max_position_inconsistent_rate": max_inconsistent}
    if ai_labels.empty:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**base, "note": "no AI labels in this batch"})
    status = ai_labels["status"].astype("string")
    both = ai_labels["label_ab"].notna() & ai_labels["label_ba"].notna()
    frame = pd.DataFrame({
        "judge": ai_labels["judge"].astype("string").fillna("(unknown)"),
        "unparsed": status.eq("unparsed").fillna(False), "inconsistent": status.eq("inconsistent").fillna(False),
        "failed": status.eq("failed").fillna(False), "both_orders": both,
    })
    per = frame.groupby("judge").agg(verdicts=("unparsed", "size"), unparsed=("unparsed", "sum"), both_orders=("both_orders", "sum"),
                                     inconsistent=("inconsistent", "sum"), failed=("failed", "sum")).reset_index()
    per["unparsed_rate"] = per["unparsed"] / per["verdicts"]
    per["inconsistent_rate"] = np.where(per["both_orders"] > 0, per["inconsistent"] / per["both_orders"].where(per["both_orders"] > 0, 1), np.nan)
    over = per[(per["unparsed_rate"] > max_unparsed) | (per["inconsistent_rate"].fillna(0) > max_inconsistent)]
    metadata = {
        **base,
        "unparsed_rate": float(per["unparsed"].sum() / per["verdicts"].sum()),
        "position_inconsistent_rate": _rate(int(per["inconsistent"].sum()), int(per["both_orders"].sum())),
        "failed": int(per["failed"].sum()),
        "by_judge": _md(per),
    }
    if not over.empty:
        metadata["judges_over_threshold"] = dg.MetadataValue.json(sorted(map(str, over["judge"])))
    return dg.AssetCheckResult(passed=over.empty, severity=WARN, metadata=metadata)


@batch_check("ai_labels")
def judge_verdicts_readable_and_consistent(ai_labels: pd.DataFrame) -> dg.AssetCheckResult:
    """Each judge's unparsed rate is at most `max_unparsed_rate` (default 10%) and its
    position-inconsistent rate (a different verdict when A and B swap places) at most
    `max_position_inconsistent_rate` (default 20%). Those pairs go to people, so a high rate costs
    money: fix the judge prompt or model (docs/llm.md), then rerun the batch."""
    return judge_quality_result(ai_labels, threshold("max_unparsed_rate"), threshold("max_position_inconsistent_rate"))


@batch_check("ai_labels", name=STALE_CHECK)
def labels_under_current_versions(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """The batch was made under the current guidelines and judge prompts: prefpipe's own AI labels
    carry the current versions and its last run used the current guideline version. Fails (WARN)
    for a stale batch, with the stale stages and what relabelling costs; `prefpipe stale --record`
    runs it alone for every batch after a guideline edit, and `prefpipe backfill --stale` reruns
    the stale ones. Human labels kept under older versions are listed, never failed on."""
    from prefpipe.stale_cli import check_result_for, compute_view

    batch_id = context.partition_key
    view, _, current = compute_view(context.instance, batch_id=batch_id, include_current=True, this_run=context.run.run_id)
    passed, metadata = check_result_for(view, batch_id, current)
    return dg.AssetCheckResult(passed=passed, severity=WARN, metadata=metadata)


# ------------------------------------------------------------------------------------------------
# final_labels: label distribution drift against the other batches


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
                  "chi_square_dof": int(dof), "distribution": _md(table)},
    )


def other_batches_labels(batch_id: str) -> tuple[pd.Series, int]:
    """Final labels per scale point over every other batch in the warehouse, and how many batches."""
    from prefpipe.settings import WAREHOUSE_SCHEMA
    from prefpipe.warehouse import present_tables, read_only

    with read_only() as con:
        if con is None or "final_labels" not in present_tables(con):
            return pd.Series(dtype="int64"), 0
        where = f"FROM {WAREHOUSE_SCHEMA}.final_labels WHERE batch_id <> ? AND label IS NOT NULL"
        rows = con.execute(f"SELECT label, count(*) {where} GROUP BY label", [batch_id]).fetchall()
        n_batches = con.execute(f"SELECT count(DISTINCT batch_id) {where}", [batch_id]).fetchone()[0]
    return pd.Series({str(label): int(n) for label, n in rows}, dtype="int64"), int(n_batches)


@batch_check("final_labels")
def label_distribution_stable(context: dg.AssetCheckExecutionContext, final_labels: pd.DataFrame) -> dg.AssetCheckResult:
    """The batch's final-label distribution is close to the other batches' pooled distribution:
    total variation distance at most `max_label_drift_tvd` (default 0.15). Drift (WARN) can be a
    new prompt mix, a different pair strategy or model, or a changed guideline; compare the
    distributions in the metadata before training on it. Passes with a note for the first batch."""
    others, n = other_batches_labels(context.partition_key)
    return drift_result(final_labels["label"], others, n, threshold("max_label_drift_tvd"))


# ------------------------------------------------------------------------------------------------
# routing: spot-check disagreement


def spot_check_result(estimate: SpotCheckEstimate, max_rate: float) -> dg.AssetCheckResult:
    """Disagreement on labelled spot checks at most `max_rate` (WARN above), with its Wilson interval."""
    metadata = {"max_spot_check_disagreement": max_rate, "spot_checks_labelled": estimate.n_checked,
                "disagreements": estimate.n_disagree, "statement": estimate.statement}
    if estimate.n_checked == 0:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**metadata, "note": "no spot check labelled yet"})
    metadata.update({"disagreement_rate": estimate.rate, "wilson_ci_low": estimate.ci_low, "wilson_ci_high": estimate.ci_high,
                     "confidence_level": estimate.confidence_level})
    return dg.AssetCheckResult(passed=bool(estimate.rate <= max_rate), severity=WARN, metadata=metadata)


@batch_check("routing", additional_ins={"human_annotations": dg.AssetIn("human_annotations")})
def spot_check_disagreement_low(routing: pd.DataFrame, human_annotations: pd.DataFrame) -> dg.AssetCheckResult:
    """People agree with the accepted AI labels they spot-checked: the directional disagreement
    rate is at most `max_spot_check_disagreement` (default 15%), with its 95% Wilson interval.
    Spot checks are a random sample of the accepted AI labels, so above it (WARN) the labels
    nobody checked are that wrong too: raise `ai_confidence_accept` or improve the judge."""
    from prefpipe.assets._common import drop_batch
    from prefpipe.routing import spot_check_disagreement

    estimate = spot_check_disagreement(drop_batch(routing), drop_batch(human_annotations))
    return spot_check_result(estimate, threshold("max_spot_check_disagreement"))


# ------------------------------------------------------------------------------------------------
# preference_dataset: the export's schema and rows (blocking)


def _is_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: isinstance(v, str)).astype(bool)


def _blank(values: pd.Series) -> pd.Series:
    return values.where(_is_text(values), "").astype(str).str.strip().eq("")


def export_problems(rows: pd.DataFrame) -> list[str]:
    """What makes preference_dataset rows unusable as training data (empty list: nothing)."""
    if rows.empty:
        return ["no preference rows: nothing to train on (no final label yet, or only ties)"]
    missing = [c for c in schemas.PREFERENCE_DATASET if c not in rows.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    problems = []

    def report(mask: pd.Series, what: str) -> None:
        if mask.any():
            ids = rows.loc[mask, "pair_id"].astype(str).head(5).tolist()
            problems.append(f"{int(mask.sum())} row(s) {what} (e.g. {', '.join(ids)})")

    for col in ("prompt", "chosen", "rejected"):
        report(~_is_text(rows[col]), f"whose `{col}` is missing or not text")
    report(_is_text(rows["prompt"]) & _blank(rows["prompt"]), "with an empty `prompt`")
    report(rows["chosen"].astype("string").eq(rows["rejected"].astype("string")).fillna(False), "whose `chosen` equals `rejected`")
    margin = pd.to_numeric(rows["margin"], errors="coerce")
    bad_margin = rows["margin"].notna() & (margin.isna() | ~np.isfinite(margin.fillna(0.0)) | (margin < 0))
    report(bad_margin, "with a margin that is not a finite number >= 0")
    report(rows["pair_id"].isna() | rows["pair_id"].duplicated(keep=False), "with a missing or repeated `pair_id`")
    return problems


def export_result(rows: pd.DataFrame) -> dg.AssetCheckResult:
    problems = export_problems(rows)
    metadata = {"rows": len(rows), "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "_none_")}
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                               description="; ".join(problems) or None)


@batch_check("preference_dataset", blocking=True)
def export_is_well_formed(preference_dataset: pd.DataFrame) -> dg.AssetCheckResult:
    """The training export is usable: at least one row; prompt, chosen and rejected are text and the
    prompt is not empty; chosen differs from rejected; margins finite and >= 0 where present; one
    row per pair. Blocking with severity ERROR: a failure fails the run and blocks everything
    downstream of the dataset, so an empty or malformed export never passes as a good batch."""
    return export_result(preference_dataset.drop(columns=["batch_id"], errors="ignore"))


def empty_response_result(rows: pd.DataFrame) -> dg.AssetCheckResult:
    """No preference row whose chosen or rejected response is empty text (WARN listing them)."""
    if rows.empty or not {"chosen", "rejected"} <= set(rows.columns):
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={"rows": len(rows)})
    chosen, rejected = _blank(rows["chosen"]) & _is_text(rows["chosen"]), _blank(rows["rejected"]) & _is_text(rows["rejected"])
    hit = rows.loc[chosen | rejected, ["pair_id", "label", "label_source"]].assign(empty=np.where(chosen[chosen | rejected], "chosen", "rejected"))
    return dg.AssetCheckResult(
        passed=hit.empty, severity=WARN,
        metadata={"rows": len(rows), "empty_chosen": int(chosen.sum()), "empty_rejected": int(rejected.sum()), "rows_with_an_empty_response": _md(hit)},
    )


@batch_check("preference_dataset")
def export_responses_not_empty(preference_dataset: pd.DataFrame) -> dg.AssetCheckResult:
    """No training row pairs a response with an empty one. Such pairs come from existing
    completions where a model answered nothing (response_pairs keeps them, flagged). An empty
    `rejected` teaches "say something"; an empty `chosen` teaches the model to answer nothing.
    WARN with the pairs: drop them from the export or relabel them if that is not what you want."""
    return empty_response_result(preference_dataset)


# ------------------------------------------------------------------------------------------------
# guidelines: which batches the current guidelines leave stale


@dg.asset_check(asset="guidelines")
def batches_under_current_guidelines(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Every batch in the warehouse was made under these guidelines. Fails (WARN) listing the stale
    batches, what relabelling them costs and what to run (`prefpipe backfill --stale`); the
    automation sensor relabels them on its own when the guidelines' content changed. Per batch, the
    ai_labels check `labels_under_current_versions` says the same (`prefpipe stale --record`)."""
    from prefpipe.stale_cli import batches_to_rerun, compute_view

    view, batch_ids, current = compute_view(context.instance)
    own = context.run.tags.get("dagster/partition")  # this run reruns that batch itself
    stale = [b for b in batches_to_rerun(view) if b != own]
    rows = view[view["batch_id"].isin(stale)]
    metadata = {
        "guideline_version": current.guideline,
        "batches": len(batch_ids),
        "stale_batches": dg.MetadataValue.json(stale),
        "relabel_cost_usd": float(rows.loc[rows["stage"] == "ai_labels", "estimated_cost_usd"].sum()),
        "stale_stages": _md(rows[["batch_id", "stage", "n_labels", "n_stale", "stale_guideline_versions", "estimated_cost_usd", "action"]]),
        "what_to_do": "nothing" if not stale else "prefpipe backfill --stale (or wait for the automation sensor)",
    }
    if own is not None:
        metadata["rerun_in_this_run"] = own
    return dg.AssetCheckResult(passed=not stale, severity=WARN, metadata=metadata)


CHECKS = [
    krippendorff_alpha_meets_guideline,
    no_annotator_flagged_by_gold,
    judge_verdicts_readable_and_consistent,
    labels_under_current_versions,
    label_distribution_stable,
    spot_check_disagreement_low,
    export_is_well_formed,
    export_responses_not_empty,
    batches_under_current_guidelines,
]
"""Every asset check of the project, for Definitions(asset_checks=...)."""

