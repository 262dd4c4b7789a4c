"""Cohen's kappa (two annotators, optionally weighted), its table over every annotator pair, and
Fleiss' kappa (many annotators), all from integer-coded labels in a few vectorized steps.

- `cohens_kappa` equals scikit-learn's `cohen_kappa_score` (weights None, "linear", "quadratic")
  given the same category order. Pairs where either label is missing are dropped. The category
  order follows prefpipe.quality._frames (the whole five-point scale for scale labels, so a linear
  weight is the distance on the scale; sorted values otherwise, which is scikit-learn's default).
- `cohens_kappa_table` builds every pair's contingency table from one sort of the labels by item
  and one bincount, instead of a scikit-learn call per pair.
- `fleiss_kappa` equals statsmodels' `fleiss_kappa` when every item has the same number of labels.
  When the numbers differ it uses the usual generalisation (Fleiss 1971 with per-item n_i): the
  observed agreement is the mean over items of sum_j n_ij (n_ij - 1) / (n_i (n_i - 1)), the chance
  agreement sum_j p_j^2 with p_j the share of category j among all those items' labels. Items with
  fewer than two labels carry no agreement information and are left out (statsmodels would reject
  the table).

Undefined cases (no shared item, a single category in use, so chance agreement is 1) raise
AgreementUndefinedError; the table reports them as NaN with the reason in its `note` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations, _encode_labels, as_annotations
from prefpipe.quality.agreement import agreement_from_patterns
from prefpipe.quality.bootstrap import Estimate, pattern_estimate, table_intervals
from prefpipe.quality.errors import AgreementUndefinedError, QualityInputError
from prefpipe.quality.krippendorff import pairable_counts

Weights = Literal["linear", "quadratic"] | None


def weight_matrix(k: int, weights: Weights) -> np.ndarray:
    """Disagreement weights between category indices, as scikit-learn defines them."""
    idx = np.arange(k)
    if weights is None:
        return 1.0 - np.eye(k)
    if weights == "linear":
        return np.abs(idx[:, None] - idx[None, :]).astype(np.float64)
    if weights == "quadratic":
        return ((idx[:, None] - idx[None, :]) ** 2).astype(np.float64)
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', not {weights!r}")


def kappa_from_tables(tables: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Cohen's kappa of each (..., K, K) contingency table (rows: first annotator); NaN where
    expected disagreement is 0."""
    tables = np.asarray(tables, dtype=np.float64)
    k = tables.shape[-1]
    rows = tables.sum(axis=-1)
    cols = tables.sum(axis=-2)
    n = rows.sum(axis=-1)
    if weights is None:  # only the diagonal and the margins matter: (p_o - p_e) / (1 - p_e)
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = tables[..., np.arange(k), np.arange(k)].sum(axis=-1) / n
            chance = (rows * cols).sum(axis=-1) / (n * n)
            out = (observed - chance) / (1 - chance)
        return np.where(chance < 1, out, np.nan)
    w = weight_matrix(k, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = rows[..., :, None] * cols[..., None, :] / n[..., None, None]
        den = (w * expected).sum(axis=(-2, -1))
        out = 1 - (w * tables).sum(axis=(-2, -1)) / den
    return np.where(den > 0, out, np.nan)


def cohens_kappa(
    labels_a: Sequence | np.ndarray | pd.Series,
    labels_b: Sequence | np.ndarray | pd.Series,
    weights: Weights = None,
    *,
    categories: Sequence | None = None,
) -> float:
    """Cohen's kappa between two annotators' labels on the same items (aligned by position)."""
    a = pd.Series(np.asarray(labels_a, dtype=object))  # by position: a Series' index is ignored
    b = pd.Series(np.asarray(labels_b, dtype=object))
    if len(a) != len(b):
        raise QualityInputError(f"labels_a has {len(a)} labels but labels_b has {len(b)}: they must be aligned by item")
    both = pd.concat([a, b], ignore_index=True)
    codes, cats = _encode_labels(both, "label", categories)
    ca, cb = codes[: len(a)], codes[len(a) :]
    keep = (ca >= 0) & (cb >= 0)
    if not keep.any():
        raise AgreementUndefinedError("Cohen's kappa is undefined: no item has a label from both annotators")
    k = len(cats)
    table = np.bincount(ca[keep] * k + cb[keep], minlength=k * k)
    value = float(kappa_from_tables(table.reshape(k, k), weights))
    if not np.isfinite(value):
        raise AgreementUndefinedError(
            "Cohen's kappa is undefined: both annotators used one and the same category throughout, "
            "so chance agreement is 1"
        )
    return value


def annotator_pairs(ann: Annotations) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of labels on the same item, as row indices (r1, r2) into `ann` with
    annotator[r1] < annotator[r2]. O(labels x max labels per item); no sort when the labels are
    already grouped by item (factorize numbers items in order of appearance)."""
    if ann.n_labels < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    grouped = bool(np.all(ann.item[1:] >= ann.item[:-1]))
    order = np.arange(ann.n_labels) if grouped else np.argsort(ann.item, kind="stable")
    items = ann.item[order]
    firsts, seconds = [], []
    for d in range(1, int(np.bincount(ann.item).max())):
        same = np.flatnonzero(items[d:] == items[:-d])
        if same.size == 0:
            break
        firsts.append(order[same])
        seconds.append(order[same + d])
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    r1, r2 = np.concatenate(firsts), np.concatenate(seconds)
    swap = ann.annotator[r1] > ann.annotator[r2]
    return np.where(swap, r2, r1), np.where(swap, r1, r2)


def pair_tables(ann: Annotations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(annotator_a codes, annotator_b codes, tables (pairs x K*K)) for every pair sharing an item."""
    r1, r2 = annotator_pairs(ann)
    k, na = ann.n_categories, ann.n_annotators
    a1, a2 = ann.annotator[r1], ann.annotator[r2]
    cell = ann.label[r1] * k + ann.label[r2]
    if na * na * k * k <= 50_000_000:
        flat = np.bincount((a1 * na + a2) * (k * k) + cell, minlength=na * na * k * k).reshape(na * na, k * k)
        used = np.flatnonzero(flat.any(axis=1))
        return used // na, used % na, flat[used]
    pair_key, pair_idx = np.unique(a1 * na + a2, return_inverse=True)
    tables = np.bincount(pair_idx * (k * k) + cell, minlength=len(pair_key) * k * k).reshape(len(pair_key), k * k)
    return pair_key // na, pair_key % na, tables


def cohens_kappa_table(
    data: pd.DataFrame | Annotations,
    *,
    min_shared: int = 20,
    weights: Weights = None,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    n_boot: int = 0,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Cohen's kappa for every annotator pair with at least `min_shared` items labelled by both.

    Rows are ordered by annotator_a then annotator_b, both in order of first appearance (a before
    b). Columns: annotator_a, annotator_b, n_shared,
    agreement (raw share of shared items labelled alike), kappa, ci_low, ci_high (NaN unless
    n_boot > 0; bootstrap over the pair's shared items), note (why kappa is NaN, else "").
    The default min_shared=20: below that a kappa's 95% interval is typically wider than 0.5.
    """
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories, for_agreement=True)
    a, b, tables = pair_tables(ann)
    n_shared = tables.sum(axis=1)
    keep = n_shared >= max(int(min_shared), 1)
    a, b, tables, n_shared = a[keep], b[keep], tables[keep], n_shared[keep]
    k = ann.n_categories
    kappa = kappa_from_tables(tables.reshape(-1, k, k), weights)
    agreement = tables[:, np.arange(k) * (k + 1)].sum(axis=1) / np.maximum(n_shared, 1)
    if n_boot > 0 and len(tables):
        low, high = table_intervals(
            tables, lambda t: kappa_from_tables(t.reshape(*t.shape[:-1], k, k), weights), n_boot=n_boot, ci=ci, seed=seed
        )
    else:
        low = high = np.full(len(tables), np.nan)
    note = np.where(np.isfinite(kappa), "", "undefined: both used one and the same category on every shared item")
    out = pd.DataFrame(
        {
            "annotator_a": ann.annotators[a].to_numpy(dtype=object),
            "annotator_b": ann.annotators[b].to_numpy(dtype=object),
            "n_shared": n_shared.astype(np.int64),
            "agreement": agreement,
            "kappa": kappa,
            "ci_low": low,
            "ci_high": high,
            "note": note,
        }
    )
    return out


def fleiss_kappa(
    data: pd.DataFrame | Annotations,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> float:
    """Fleiss' kappa over the items with two or more labels (module docstring for unequal counts)."""
    return fleiss_kappa_estimate(data, item=item, annotator=annotator, label=label, categories=categories, n_boot=0).value


def fleiss_from_patterns(patterns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fleiss' kappa for each row of item-pattern multiplicities `weights` (resamples x patterns);
    its observed agreement P-bar is the raw pairwise agreement."""
    observed = agreement_from_patterns(patterns, weights)
    cat = weights @ patterns.astype(np.float64)
    share = cat / cat.sum(axis=1, keepdims=True)
    chance = (share**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (observed - chance) / (1 - chance)
    return np.where(chance < 1, out, np.nan)


def fleiss_kappa_estimate(
    data: pd.DataFrame | Annotations,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> Estimate:
    """Fleiss' kappa with a percentile interval from `n_boot` item resamples (seeded)."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories, for_agreement=True)
    est = pattern_estimate(pairable_counts(ann), fleiss_from_patterns, n_boot=n_boot, ci=ci, seed=seed)
    if not np.isfinite(est.value):
        raise AgreementUndefinedError("Fleiss' kappa is undefined: every label is the same category, so chance agreement is 1")
    return est
