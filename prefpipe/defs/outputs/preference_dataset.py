"""The `preference_dataset` asset: the batch as training rows; and its checks: the blocking check
that the export is well formed, and one that no response in it is empty."""

import dagster as dg
import numpy as np
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.dataset import preference_rows
from prefpipe.defs.common import BATCH_ASSET, WARN, batch_check, check_md, drop_batch, user_errors, with_batch


@dg.asset(**BATCH_ASSET, group_name="outputs")
@user_errors
def preference_dataset(context: dg.AssetExecutionContext, final_labels: pd.DataFrame, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """The batch as training data in TRL's format: prompt, chosen, rejected, with a margin (label
    strength x confidence), where the label came from and its guideline version. Pairs whose final
    label is a tie carry no preference and are left out. Its blocking check must pass before
    `published_dataset` writes any file."""
    batch_id = context.partition_key
    rows = preference_rows(drop_batch(final_labels), drop_batch(response_pairs))
    context.add_output_metadata(
        {
            "rows": len(rows),
            "ties_left_out": int((final_labels["label"] == "A=B").sum()),
            "by_source": dg.MetadataValue.json(rows["label_source"].value_counts().to_dict()),
            "preview": dg.MetadataValue.md(rows.head(3)[["pair_id", "label", "margin", "label_source"]].to_markdown(index=False)),
        }
    )
    return with_batch(rows, schemas.PREFERENCE_DATASET, batch_id, table="preference_dataset")


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
        metadata={"rows": len(rows), "empty_chosen": int(chosen.sum()), "empty_rejected": int(rejected.sum()), "rows_with_an_empty_response": check_md(hit)},
    )


@batch_check("preference_dataset")
def export_responses_not_empty(preference_dataset: pd.DataFrame) -> dg.AssetCheckResult:
    """No training row pairs a response with an empty one. Such pairs come from existing
    completions where a model answered nothing (response_pairs keeps them, flagged). An empty
    `rejected` teaches "say something"; an empty `chosen` teaches the model to answer nothing.
    WARN with the pairs: drop them from the export or relabel them if that is not what you want."""
    return empty_response_result(preference_dataset)
