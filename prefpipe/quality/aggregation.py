"""Final labels from several annotators' labels: majority vote and reliability-weighted vote.

Every aggregator (these and dawid_skene) returns one row per item, in the order items first appear
in the input, with the columns <item>, label, confidence, n_labels:
- label: the chosen category, or None for an item with no label at all (it is kept so nothing is
  lost silently; drop it with `result[result.label.notna()]`), or whose labels all weigh 0.
- confidence: the winning share (majority: votes / labels; weighted: weight / total weight; for
  Dawid-Skene the posterior probability of the chosen label).
- n_labels: how many present labels the item has.

Ties (`ties=`, the same for every aggregator; prefpipe/quality/ties.py): on the five-point scale
the median of the item's labels (one A>B against one B>A is A=B); on nominal labels one of the tied
labels chosen by a hash of the item id, which costs nothing against a random tie-break; "batch"
keeps the old rule (the batch's most used label), which on RTE cost 4.4 points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations, as_annotations
from prefpipe.quality.errors import QualityInputError
from prefpipe.quality.ties import TieRule, choose_labels

RESULT_COLUMNS: tuple[str, ...] = ("label", "confidence", "n_labels")


def result_frame(ann: Annotations, scores: np.ndarray, confidence_base: np.ndarray | None = None, ties: TieRule = "auto") -> pd.DataFrame:
    """The aggregators' common output from per-item category scores (items x K).

    confidence = winning score / `confidence_base` (default: the row's score sum); rows whose base
    is 0 (no label, or all weight 0) get no label."""
    n_labels = ann.labels_per_item()
    winner = choose_labels(ann, scores, ties)
    base = scores.sum(axis=1) if confidence_base is None else confidence_base
    has = base > 0
    cats = np.asarray(ann.categories + (None,), dtype=object)
    label = cats[np.where(has, winner, len(ann.categories))]
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(has, scores[np.arange(len(scores)), winner] / np.where(has, base, 1), np.nan)
    return pd.DataFrame(
        {ann.item_name: ann.items.to_numpy(), "label": label, "confidence": confidence, "n_labels": n_labels.astype(np.int64)}
    )


def label_counts(
    data: pd.DataFrame | Annotations,
    weights: Mapping | pd.Series | None = None,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> pd.DataFrame:
    """Votes per item (rows, first-appearance order) and category (columns, category order);
    weighted by annotator when `weights` is given."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories)
    scores = _scores(ann, None if weights is None else annotator_weights(ann, weights))
    return pd.DataFrame(scores, index=ann.items, columns=pd.Index(ann.categories, name=ann.label_name))


def _scores(ann: Annotations, per_annotator: np.ndarray | None) -> np.ndarray:
    k = ann.n_categories
    w = None if per_annotator is None else per_annotator[ann.annotator]
    flat = np.bincount(ann.item * k + ann.label, weights=w, minlength=ann.n_items * k)
    return flat.reshape(ann.n_items, k).astype(np.float64)


def annotator_weights(ann: Annotations, weights: Mapping | pd.Series) -> np.ndarray:
    """Weights aligned to ann.annotators; every annotator must have a finite weight >= 0."""
    series = pd.Series(weights, dtype="float64") if not isinstance(weights, pd.Series) else weights.astype("float64")
    aligned = series.reindex(ann.annotators)
    missing = ann.annotators[aligned.isna().to_numpy()]
    if len(missing):
        raise QualityInputError(
            f"weights: {len(missing)} annotator(s) have no weight (first: {list(missing[:5])}); give every "
            "annotator a weight (0 to ignore one) rather than letting a default be invented"
        )
    values = aligned.to_numpy()
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise QualityInputError(f"weights: weights must be finite and >= 0; {list(ann.annotators[bad][:5])} are not")
    return values


def majority_vote(
    data: pd.DataFrame | Annotations,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    ties: TieRule = "auto",
) -> pd.DataFrame:
    """The most common label per item; confidence is its share of the item's labels."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories)
    return result_frame(ann, _scores(ann, None), ties=ties)


def weighted_vote(
    data: pd.DataFrame | Annotations,
    weights: Mapping | pd.Series,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    ties: TieRule = "auto",
) -> pd.DataFrame:
    """The label with the largest summed annotator weight per item (for example the reliability
    composite); confidence is its share of the item's total weight. `weights` maps every annotator
    id to a finite weight >= 0 (a Series indexed by annotator id, or a dict)."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories)
    return result_frame(ann, _scores(ann, annotator_weights(ann, weights)), ties=ties)
