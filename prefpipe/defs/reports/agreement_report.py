"""The `agreement_report` asset: how much the people who count agree; and its check against the
guideline's minimum Krippendorff's alpha."""

import dagster as dg
import numpy as np
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.labels import SCALE
from prefpipe.defs.common import BATCH_ASSET, WARN, batch_check, check_threshold, drop_batch, md_image, user_errors, with_batch
from prefpipe.defs.quality.annotator_reliability import annotator_labels
from prefpipe.defs.resources import GuidelinesFolder
from prefpipe.quality.report import agreement_report as agreement_rows
from prefpipe.reports.markdown import agreement_md
from prefpipe.reports.plots import agreement_plot


@dg.asset(**BATCH_ASSET, group_name="reports")
@user_errors
def agreement_report(context: dg.AssetExecutionContext, filtered_annotations: pd.DataFrame) -> pd.DataFrame:
    """How much the people who count agree, each figure with a 95% bootstrap interval (1,000 pair
    resamples) and what it means: raw and directional agreement, Fleiss' kappa, Krippendorff's
    alpha (ordinal, for the five-point scale, and nominal), and Cohen's kappa for every pair of
    annotators with 20+ shared pairs. Bands: 0.81+ almost perfect, ready for training; 0.61-0.80
    substantial, usable with majority voting; 0.41-0.60 moderate, revise the guidelines; 0.21-0.40
    fair, the task may be too subjective; under 0.21 slight, the task is broken."""
    batch_id = context.partition_key
    people = annotator_labels(drop_batch(filtered_annotations))
    if people.empty:
        report = schemas.empty(schemas.AGREEMENT_REPORT)
    else:
        report = agreement_rows(people, categories=SCALE, n_boot=1000, seed=0)
    batch_rows = report[report["scope"] == "batch"]
    metadata = {"report": dg.MetadataValue.md(agreement_md(report)), "plot": md_image(agreement_plot(report), "agreement with 95% intervals")}
    for row in batch_rows.itertuples():
        metadata[row.metric] = float(row.value) if pd.notna(row.value) else float("nan")
    alpha = batch_rows[batch_rows["metric"] == "krippendorff_alpha_ordinal"]
    if len(alpha):
        metadata["interpretation"] = str(alpha["interpretation"].iloc[0])
    context.add_output_metadata(metadata)
    return with_batch(report, schemas.AGREEMENT_REPORT, batch_id, table="agreement_report")


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
def krippendorff_alpha_meets_guideline(agreement_report: pd.DataFrame, guidelines_folder: GuidelinesFolder) -> dg.AssetCheckResult:
    """Krippendorff's alpha (ordinal) of the people who count is at least the guideline's
    `min_krippendorff_alpha` (default 0.667). Under it (WARN): read the band in the metadata;
    moderate or worse means the guidelines or the task need work before the labels are trusted."""
    return alpha_result(agreement_report, check_threshold(guidelines_folder.load(), "min_krippendorff_alpha"))
