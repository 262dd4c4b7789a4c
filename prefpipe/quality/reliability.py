"""Annotator reliability (DESIGN.md) and the filter that drops unreliable annotators' labels.

Per annotator:
- gold_accuracy: share of their gold answers (rows with is_gold true and a gold label) they got
  right; NaN with no gold answer. `gold_match="direction"` (five-point scale only) counts an answer
  right when it points the same way as the key (A>B for A>>B), the annotation app's own rule
  (prefpipe.annotate.gold), so the batch report never flags someone the app judged fine.
- majority_agreement: leave-one-out agreement with the majority of the OTHER annotators on the
  same items (counting their own vote would inflate it). Per label: 1 if it is the others' unique
  majority, 1/t if it is one of t tied top labels, else 0; items nobody else labelled are skipped.
  NaN when none of their items has another label.
- mean_seconds: mean time on task of their labelled rows with a known duration; NaN if none.
- speed_penalty: DESIGN.md's speed term (higher is better, added to the composite with weight
  0.3): 1.0 for a mean of `fast_seconds` (5 s) or more, scaled down linearly to 0 at 0 s.
- composite: 0.4 gold_accuracy + 0.3 majority_agreement + 0.3 speed_penalty. A term that is NaN
  (no gold answers, no other annotator on their items, no durations) is left out and the weights
  of the remaining terms are renormalised to sum to 1 (e.g. no gold: 0.5 agreement + 0.5 speed).
  No value is invented; with no term available the composite is NaN.
- ds_accuracy: Dawid-Skene's estimate (mean posterior that their label is right) from a fit with
  the gold labels held fixed; pass `ds_fit=` to reuse a fit made for final labels.
- gold_flagged: at least `min_gold` (5) gold answers and under `gold_pass` (60%) right.
- kept: not gold_flagged. The composite is a reported figure, not a filter: on a hard task most
  honest workers score under the source design's 0.6 on agreement alone (S_Rel: 664 of 766
  dropped, 18,629 of 20,232 items left unlabelled), and Dawid-Skene weights them by evidence
  instead (prefpipe.quality.final_labels). Pass `threshold=` to filter on the composite as the
  source design did; then an annotator whose composite is NaN is not kept unless
  `keep_unscored=True` (being unknown is not being reliable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations, _encode_labels
from prefpipe.quality.dawid_skene import DawidSkeneFit, fit_dawid_skene
from prefpipe.core.labels import DIRECTION
from prefpipe.quality.errors import QualityInputError

COMPOSITE_WEIGHTS: tuple[float, float, float] = (0.4, 0.3, 0.3)  # gold, agreement, speed (DESIGN.md)
RELIABILITY_COLUMNS: tuple[str, ...] = (
    "n_labels", "gold_answers", "gold_accuracy", "majority_agreement", "mean_seconds",
    "speed_penalty", "composite", "ds_accuracy", "gold_flagged", "kept",
)


def leave_one_out_agreement(ann: Annotations, chunk: int = 1_000_000) -> np.ndarray:
    """Per label row: agreement with the majority of the other labels on its item (module
    docstring), NaN where the item has no other label."""
    counts = ann.counts().astype(np.int32)
    out = np.full(ann.n_labels, np.nan)
    for s in range(0, ann.n_labels, chunk):
        items, labels = ann.item[s : s + chunk], ann.label[s : s + chunk]
        others = counts[items]
        others[np.arange(len(items)), labels] -= 1
        top = others.max(axis=1)
        tied = others == top[:, None]
        n_tied = tied.sum(axis=1)
        agree = tied[np.arange(len(items)), labels] / n_tied
        out[s : s + chunk] = np.where(others.sum(axis=1) > 0, agree, np.nan)
    return out


def speed_term(mean_seconds: np.ndarray, fast_seconds: float = 5.0) -> np.ndarray:
    """1.0 at `fast_seconds` or more, linearly down to 0 at 0 s; NaN stays NaN."""
    return np.clip(np.asarray(mean_seconds, dtype=np.float64) / fast_seconds, 0.0, 1.0)


def composite_score(terms: np.ndarray, weights: Sequence[float] = COMPOSITE_WEIGHTS) -> np.ndarray:
    """Weighted mean of the available (finite) terms per row, weights renormalised; NaN if none."""
    w = np.asarray(weights, dtype=np.float64)[None, :]
    ok = np.isfinite(terms)
    total = (w * ok).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.where(ok, terms, 0.0) * w).sum(axis=1) / total, np.nan)


def gold_labels(df: pd.DataFrame, *, item: str = "pair_id", is_gold: str = "is_gold", gold_label: str = "gold_label") -> pd.Series:
    """item -> gold label from the rows marked gold (for dawid_skene(gold=...)); an item whose rows
    carry different gold labels is an error."""
    marked = df[is_gold].fillna(False).astype(bool) & df[gold_label].notna()
    pairs = df.loc[marked, [item, gold_label]].drop_duplicates()
    clash = pairs[item].duplicated(keep=False)
    if clash.any():
        first = pairs.loc[clash, item].iloc[0]
        labels = sorted(map(str, pairs.loc[pairs[item] == first, gold_label]))
        raise QualityInputError(f"{gold_label}: {item} {first!r} has conflicting gold labels {labels}")
    return pairs.set_index(item)[gold_label]


def _gold_sides(categories: Sequence, gold_match: str) -> np.ndarray:
    """Per category code, the class a gold answer is compared by: itself, or its direction."""
    if gold_match == "exact":
        return np.arange(len(categories))
    if gold_match != "direction":
        raise QualityInputError(f"gold_match: {gold_match!r} must be 'exact' or 'direction'")
    unknown = [c for c in categories if c not in DIRECTION]
    if unknown:
        raise QualityInputError(f"gold_match='direction' needs labels on the five-point scale; {unknown[0]!r} is not")
    sides = sorted(set(DIRECTION.values()))
    return np.array([sides.index(DIRECTION[c]) for c in categories])


def _mean_per_annotator(annotator: np.ndarray, values: np.ndarray, n_annotators: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean of `values` per annotator code, NaN for an annotator with none; how many each has)."""
    n = np.bincount(annotator, minlength=n_annotators)
    total = np.bincount(annotator, weights=values, minlength=n_annotators)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan), n


def annotator_reliability(
    df: pd.DataFrame,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    duration: str | None = "duration_s",
    is_gold: str | None = "is_gold",
    gold_label: str | None = "gold_label",
    categories: Sequence | None = None,
    threshold: float | None = None,
    min_gold: int = 5,
    gold_pass: float = 0.6,
    fast_seconds: float = 5.0,
    weights: Sequence[float] = COMPOSITE_WEIGHTS,
    keep_unscored: bool = False,
    ds_fit: DawidSkeneFit | None = None,
    gold_match: Literal["exact", "direction"] = "exact",
) -> pd.DataFrame:
    """One row per annotator (first-appearance order) with the columns of
    prefpipe.core.schemas.ANNOTATOR_RELIABILITY, the first named by `annotator` (module docstring).
    Pass duration=None or is_gold=None to say the batch has no durations or no gold."""
    for param, col in (("duration", duration), ("is_gold", is_gold), ("gold_label", gold_label)):
        if col is not None and col not in df.columns:
            raise QualityInputError(f"annotations have no column {col!r}; pass {param}=None if the batch has none")
    ann = Annotations.from_frame(df, item=item, annotator=annotator, label=label, categories=categories)
    na = ann.n_annotators
    rows = ann.rows
    n_labels = np.bincount(ann.annotator, minlength=na)

    # gold answers: labelled rows marked gold that carry a gold label
    gold_accuracy, gold_answers = np.full(na, np.nan), np.zeros(na, dtype=np.int64)
    gold = None
    if is_gold is not None and gold_label is not None:
        marked = pd.array(df[is_gold].to_numpy()[rows], dtype="boolean").fillna(False).to_numpy(dtype=bool)
        on_gold = np.flatnonzero(marked)  # labelled rows marked gold: encode only their gold labels
        g_codes, _ = _encode_labels(pd.Series(df[gold_label].to_numpy()[rows[on_gold]], dtype=object), gold_label, ann.categories)
        answered = on_gold[g_codes >= 0]
        same = _gold_sides(ann.categories, gold_match)
        right = (same[ann.label[answered]] == same[g_codes[g_codes >= 0]]).astype(np.float64)
        gold_accuracy, gold_answers = _mean_per_annotator(ann.annotator[answered], right, na)
        gold = gold_labels(df, item=item, is_gold=is_gold, gold_label=gold_label)

    loo = leave_one_out_agreement(ann)
    seen = np.isfinite(loo)
    majority, _ = _mean_per_annotator(ann.annotator[seen], loo[seen], na)

    mean_seconds = np.full(na, np.nan)
    if duration is not None:
        secs = pd.to_numeric(df[duration], errors="coerce").to_numpy(dtype=np.float64)[rows]
        timed = np.isfinite(secs)
        mean_seconds, _ = _mean_per_annotator(ann.annotator[timed], secs[timed], na)
    speed = speed_term(mean_seconds, fast_seconds)

    composite = composite_score(np.column_stack([gold_accuracy, majority, speed]), weights)

    if ds_fit is None:
        ds_fit = fit_dawid_skene(ann, gold=gold)
    ds_acc = ds_fit.accuracy.reindex(ann.annotators).to_numpy(dtype=np.float64)

    flagged = (gold_answers >= min_gold) & (np.nan_to_num(gold_accuracy, nan=1.0) < gold_pass)
    kept = ~flagged
    if threshold is not None:
        kept &= np.where(np.isfinite(composite), composite >= threshold, keep_unscored)
    return pd.DataFrame(
        {
            annotator: ann.annotators.to_numpy(),
            "n_labels": n_labels.astype(np.int64),
            "gold_answers": gold_answers.astype(np.int64),
            "gold_accuracy": gold_accuracy,
            "majority_agreement": majority,
            "mean_seconds": mean_seconds,
            "speed_penalty": speed,
            "composite": composite,
            "ds_accuracy": ds_acc,
            "gold_flagged": flagged,
            "kept": kept,
        }
    )


def filter_annotations(
    df: pd.DataFrame,
    reliability: pd.DataFrame,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    kept: str = "kept",
) -> tuple[pd.DataFrame, dict]:
    """Drop the rows of annotators whose `kept` is False in `reliability` (indexed by the
    `annotator` column). Returns (kept rows, summary) with summary keys labels_dropped (present
    labels dropped), rows_dropped, items_dropped (items that had a label and now have none),
    annotators_dropped (count) and dropped_annotators (their ids). An annotator missing from
    `reliability` is an error: nothing is kept or dropped by default."""
    for col, frame, name in ((annotator, reliability, "reliability"), (kept, reliability, "reliability"), (annotator, df, "annotations"), (item, df, "annotations"), (label, df, "annotations")):
        if col not in frame.columns:
            raise QualityInputError(f"{name} has no column {col!r}")
    verdict = reliability.drop_duplicates(annotator).set_index(annotator)[kept]
    if verdict.isna().any():
        raise QualityInputError(f"reliability: {kept!r} is missing for {list(verdict.index[verdict.isna()][:5])}")
    if len(df) == 0:
        return df.copy(), {"labels_dropped": 0, "rows_dropped": 0, "items_dropped": 0, "annotators_dropped": 0, "dropped_annotators": []}
    ann_codes, ann_ids = pd.factorize(df[annotator])  # map the few annotators, not every row
    item_codes, _ = pd.factorize(df[item])
    for col, codes in ((annotator, ann_codes), (item, item_codes)):
        if (codes < 0).any():
            raise QualityInputError(f"annotations: {int((codes < 0).sum())} row(s) have no {col}")
    status = pd.Series(ann_ids).map(verdict)
    unknown = status.isna().to_numpy()
    if unknown.any():
        raise QualityInputError(
            f"reliability has no row for {int(unknown.sum())} annotator(s) in the annotations "
            f"(first: {ann_ids[np.flatnonzero(unknown)[0]]!r}); compute it on the same annotations"
        )
    kept_ann = status.astype(bool).to_numpy()
    keep = kept_ann[ann_codes]
    has_label = df[label].notna().to_numpy()
    n_items = int(item_codes.max()) + 1
    before = np.bincount(item_codes[has_label], minlength=n_items) > 0
    after = np.bincount(item_codes[has_label & keep], minlength=n_items) > 0
    dropped = [a for a, k in zip(ann_ids, kept_ann) if not k]
    summary = {
        "labels_dropped": int((has_label & ~keep).sum()),
        "rows_dropped": int((~keep).sum()),
        "items_dropped": int((before & ~after).sum()),
        "annotators_dropped": len(dropped),
        "dropped_annotators": dropped,
    }
    return df.loc[keep].reset_index(drop=True), summary
