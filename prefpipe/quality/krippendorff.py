"""Krippendorff's alpha from long-format labels, equal to the `krippendorff` package to 1e-9.

Why not call the package: it takes an annotators-by-items matrix and builds an items x annotators
x values array, about 2.5 GB and 9.5 s at a million pairs. Here the coincidence matrix comes from
the item-by-category counts in one bincount and one small matrix product, and items are grouped by
their label pattern so the bootstrap costs O(patterns) per resample (see bootstrap.py).

Definition (Krippendorff 2011): alpha = 1 - D_o / D_e over the coincidence matrix of pairable
values. Items with fewer than two labels contribute nothing (the definition's pairable values);
missing labels are not values. Levels: "nominal", "ordinal" (the rank-based metric of the package,
using the categories' order), "interval" (squared difference of the categories' numeric values:
the scale's codes 0..4, or the numbers themselves) and "ratio".

Undefined cases raise AgreementUndefinedError: no item with two or more labels, or every pairable
label the same value (expected disagreement 0; the package returns NaN or raises there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations, as_annotations
from prefpipe.quality.bootstrap import Estimate, pattern_estimate
from prefpipe.quality.errors import AgreementUndefinedError

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")


def pairable_counts(ann: Annotations) -> np.ndarray:
    """Item-by-category counts of the items holding two or more labels."""
    counts = ann.counts()
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        raise AgreementUndefinedError(
            f"agreement is undefined: no {ann.item_name} holds two or more labels "
            f"({ann.n_labels} label(s) from {ann.n_annotators} annotator(s) on {ann.n_items} item(s))"
        )
    return counts


def pattern_coincidences(patterns: np.ndarray) -> np.ndarray:
    """Each pattern's contribution to the coincidence matrix, (patterns x K x K):
    (n n^T - diag(n)) / (m - 1) for an item with label counts n and m labels."""
    p = patterns.astype(np.float64)
    m = p.sum(axis=1)
    outer = p[:, :, None] * p[:, None, :]
    k = p.shape[1]
    outer[:, np.arange(k), np.arange(k)] -= p
    return outer / (m - 1)[:, None, None]


def alpha_from_coincidences(o: np.ndarray, level: Level, values: np.ndarray | None = None) -> np.ndarray:
    """Alpha for each (..., K, K) coincidence matrix; NaN where expected disagreement is 0."""
    n_v = o.sum(axis=-2)
    total = n_v.sum(axis=-1)
    k = o.shape[-1]
    expected = n_v[..., :, None] * n_v[..., None, :]
    expected[..., np.arange(k), np.arange(k)] -= n_v
    expected /= (total - 1)[..., None, None]
    d = distances(n_v, level, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        num = (o * d).sum(axis=(-2, -1))
        den = (expected * d).sum(axis=(-2, -1))
        out = 1 - num / den
    return np.where(den > 0, out, np.nan)


def distances(n_v: np.ndarray, level: Level, values: np.ndarray | None) -> np.ndarray:
    """The squared distance metric delta(c, k), (..., K, K), as the `krippendorff` package defines it."""
    k = n_v.shape[-1]
    if level == "nominal":
        return 1.0 - np.eye(k)
    if level == "ordinal":
        # (sum of n_g for g between c and k inclusive - (n_c + n_k) / 2) ** 2
        cum = np.cumsum(n_v, axis=-1)
        idx = np.arange(k)
        lo = np.minimum(idx[:, None], idx[None, :])
        hi = np.maximum(idx[:, None], idx[None, :])
        between = cum[..., hi] - cum[..., lo] + n_v[..., lo]
        return (between - (n_v[..., lo] + n_v[..., hi]) / 2) ** 2
    if values is None:
        raise ValueError(f"level {level!r} needs the categories' numeric values")
    v1, v2 = values[:, None], values[None, :]
    if level == "interval":
        return (v1 - v2) ** 2
    if level == "ratio":
        s = v1 + v2
        return np.divide(v1 - v2, s, out=np.zeros((k, k)), where=s != 0) ** 2
    raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")


def krippendorff_alpha(
    data: pd.DataFrame | Annotations,
    level: Level = "ordinal",
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> float:
    """Krippendorff's alpha of long-format labels (module docstring for levels and undefined cases)."""
    return krippendorff_alpha_estimate(
        data, level, item=item, annotator=annotator, label=label, categories=categories, n_boot=0
    ).value


def krippendorff_alpha_estimate(
    data: pd.DataFrame | Annotations,
    level: Level = "ordinal",
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> Estimate:
    """Alpha with a percentile interval from `n_boot` item resamples (seeded), and the number of
    items with two or more labels."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories, for_agreement=True)
    values = ann.numeric_values() if level in ("interval", "ratio") else None
    counts = pairable_counts(ann)

    def statistic(patterns: np.ndarray, weights: np.ndarray) -> np.ndarray:
        per_pattern = pattern_coincidences(patterns)
        k = per_pattern.shape[-1]
        o = (weights @ per_pattern.reshape(len(patterns), k * k)).reshape(-1, k, k)
        return alpha_from_coincidences(o, level, values)

    est = pattern_estimate(counts, statistic, n_boot=n_boot, ci=ci, seed=seed)
    if not np.isfinite(est.value):
        raise AgreementUndefinedError(
            f"Krippendorff's alpha is undefined: every pairable label is the same value, so expected "
            f"disagreement is 0 ({est.n_items} item(s) with two or more labels)"
        )
    return est
