"""The batch agreement report: every agreement figure with its bootstrap interval and what it means.

Rows (columns exactly prefpipe.core.schemas.AGREEMENT_REPORT, without batch_id):
- raw_agreement (batch): share of agreeing label pairs per item (no band: not chance-corrected)
- directional_agreement (batch, five-point scale only): the same with strengths merged
- fleiss_kappa (batch)
- krippendorff_alpha_ordinal and krippendorff_alpha_nominal (batch); _interval too for numeric
  labels that are not the scale
- cohens_kappa (scope "a|b") for every annotator pair with at least `min_shared` shared items
Each has a percentile interval from `n_boot` item resamples (seeded) and n_items (items with two
or more labels; for a pair, its shared items). A figure that is undefined for the batch (say, no
item holds two labels) is a row with value NaN, band "undefined" and the reason as interpretation,
never a 0 or a 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations, as_annotations
from prefpipe.quality.agreement import pairwise_agreement_estimate
from prefpipe.quality.bootstrap import Estimate
from prefpipe.quality.errors import AgreementUndefinedError
from prefpipe.quality.interpretation import NOT_CHANCE_CORRECTED, interpret
from prefpipe.quality.kappa import cohens_kappa_table, fleiss_kappa_estimate
from prefpipe.quality.krippendorff import krippendorff_alpha_estimate

REPORT_COLUMNS: tuple[str, ...] = ("metric", "scope", "value", "ci_low", "ci_high", "n_items", "band", "interpretation")
PAIR_SEPARATOR = "|"


def _row(metric: str, scope: str, compute: Callable[[], Estimate], chance_corrected: bool = True) -> dict:
    try:
        est = compute()
    except AgreementUndefinedError as exc:
        return dict(metric=metric, scope=scope, value=np.nan, ci_low=np.nan, ci_high=np.nan, n_items=0,
                    band="undefined", interpretation=f"undefined: {exc}")
    if chance_corrected:
        band, meaning = interpret(est.value)
    else:
        band, meaning = "", NOT_CHANCE_CORRECTED
    return dict(metric=metric, scope=scope, value=est.value, ci_low=est.ci_low, ci_high=est.ci_high,
                n_items=est.n_items, band=band, interpretation=meaning)


def agreement_report(
    data: pd.DataFrame | Annotations,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    min_shared: int = 20,
    pair_boot: int | None = None,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> pd.DataFrame:
    """The report rows described in the module docstring. `pair_boot` sets the resamples for the
    pairs' Cohen kappas (default: `n_boot`)."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories, for_agreement=True)
    boot = dict(n_boot=n_boot, ci=ci, seed=seed)
    rows = [_row("raw_agreement", "batch", lambda: pairwise_agreement_estimate(ann, **boot), chance_corrected=False)]
    if ann.on_scale:
        rows.append(_row("directional_agreement", "batch", lambda: pairwise_agreement_estimate(ann, directional=True, **boot), chance_corrected=False))
    rows.append(_row("fleiss_kappa", "batch", lambda: fleiss_kappa_estimate(ann, **boot)))
    levels = ["ordinal", "nominal"]
    if not ann.on_scale and _numeric(ann):
        levels.append("interval")
    for level in levels:
        rows.append(_row(f"krippendorff_alpha_{level}", "batch", lambda level=level: krippendorff_alpha_estimate(ann, level, **boot)))

    # never raises AgreementUndefinedError: no pair sharing min_shared items is an empty table
    table = cohens_kappa_table(ann, min_shared=min_shared, n_boot=n_boot if pair_boot is None else pair_boot, ci=ci, seed=seed)
    out = pd.concat([pd.DataFrame(rows, columns=list(REPORT_COLUMNS)), _pair_rows(table)], ignore_index=True)
    out["n_items"] = out["n_items"].astype("int64")
    return out


def _pair_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Report rows for the Cohen table, vectorized (there can be tens of thousands of pairs)."""
    kappa = table["kappa"].to_numpy(dtype=np.float64)
    defined = np.isfinite(kappa)
    bands = np.empty(len(kappa), dtype=object)
    meanings = np.empty(len(kappa), dtype=object)
    for j, value in enumerate(kappa):
        bands[j], meanings[j] = interpret(value)
    return pd.DataFrame(
        {
            "metric": "cohens_kappa",
            "scope": table["annotator_a"].astype(str) + PAIR_SEPARATOR + table["annotator_b"].astype(str),
            "value": kappa,
            "ci_low": table["ci_low"].to_numpy(dtype=np.float64),
            "ci_high": table["ci_high"].to_numpy(dtype=np.float64),
            "n_items": table["n_shared"].to_numpy(dtype=np.int64),
            "band": bands,
            "interpretation": np.where(defined, meanings, table["note"].to_numpy(dtype=object)),
        },
        columns=list(REPORT_COLUMNS),
    )


def _numeric(ann: Annotations) -> bool:
    try:
        ann.numeric_values()
    except ValueError:
        return False
    return True
