"""The default path from many labels to one final label per item, the one the pipeline uses.

Measured on the real crowd sets (python -m prefpipe.bench labels), Dawid-Skene beats majority vote
and the source design's path (drop annotators under a fixed composite reliability of 0.6, then
majority) on every set, and that path can leave most items unlabelled (S_Rel: 18,629 of 20,232),
because honest workers on a hard task score under 0.6 on agreement alone. So the default weights
people by evidence instead of dropping them by a threshold: Dawid-Skene fits each worker's
confusion matrix (a worker at chance carries no weight, an adversary is read backwards), gold
labels are held fixed in the fit, and only workers the gold questions flagged are left out.
An item loses its label only when every worker on it was flagged.

Roles (`role=` names the column): "annotator" and "judge" rows are workers in one model (one
worker per judge and order, so position bias is a property of a worker); "expert" rows decide
their item outright (the experts' own majority). Items with a gold label take it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations, OnDuplicate
from prefpipe.quality.aggregation import majority_vote
from prefpipe.quality.dawid_skene import fit_dawid_skene, gold_codes
from prefpipe.quality.errors import QualityInputError
from prefpipe.quality.ties import TieRule

Method = Literal["auto", "dawid_skene", "majority"]
METHODS: tuple[str, ...] = get_args(Method)
ROLES: tuple[str, ...] = ("annotator", "judge", "expert")
AUTO_METHOD = "dawid_skene"
"""What method="auto" runs today: the best method on every measured set (see the module docstring).
The output's `method` column names the method that ran, so a change here shows in the data."""

FINAL_COLUMNS: tuple[str, ...] = ("label", "confidence", "n_labels", "source", "method")


def _roles(df: pd.DataFrame, role: str | None) -> np.ndarray:
    if role is None:
        return np.full(len(df), "annotator", dtype=object)
    if role not in df.columns:
        raise QualityInputError(f"annotations have no column {role!r} (role=); columns are {', '.join(map(str, df.columns))}")
    values = df[role].astype("string")
    bad = ~values.isin(ROLES).to_numpy(dtype=bool, na_value=False)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise QualityInputError(f"{role}: row {first} has role {values.iloc[first]!r}; a role is one of {', '.join(ROLES)} "
                                f"({int(bad.sum())} row(s) are not)")
    return values.to_numpy(dtype=object)


def _empty(item: str) -> pd.DataFrame:
    return pd.DataFrame({item: pd.Series(dtype=object), "label": pd.Series(dtype=object), "confidence": pd.Series(dtype="float64"),
                         "n_labels": pd.Series(dtype="int64"), "source": pd.Series(dtype=object), "method": pd.Series(dtype=object)})


def _crowd(df: pd.DataFrame, roles: np.ndarray, *, item: str, annotator: str, label: str, gold, method: str,
           categories, on_duplicate: OnDuplicate, ties: TieRule) -> pd.DataFrame:
    """One row per item the workers (annotators and judges) labelled."""
    ran = AUTO_METHOD if method == "auto" else method
    ann = Annotations.from_frame(df, item=item, annotator=annotator, label=label, categories=categories, on_duplicate=on_duplicate)
    if ran == "majority":
        out = majority_vote(ann, ties=ties)
        gold_at, gold_cat = gold_codes(ann, gold)
        out.loc[gold_at, "label"] = np.asarray(ann.categories, dtype=object)[gold_cat]
        out.loc[gold_at, "confidence"] = 1.0
    else:
        fit = fit_dawid_skene(ann, gold=gold)
        out = fit.labels(ties=ties)
        gold_at = fit.gold_items
    kinds = roles[ann.rows]
    judged = np.bincount(ann.item, weights=(kinds == "judge").astype(np.float64), minlength=ann.n_items) > 0
    by_people = np.bincount(ann.item, weights=(kinds == "annotator").astype(np.float64), minlength=ann.n_items) > 0
    source = np.where(judged & by_people, "people+judges", np.where(judged, "judges", "people")).astype(object)
    source[gold_at] = "gold"
    return out.assign(source=source, method=ran)


def final_labels(
    df: pd.DataFrame,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    role: str | None = None,
    gold: Mapping | pd.Series | None = None,
    method: Method = "auto",
    categories: Sequence | None = None,
    on_duplicate: OnDuplicate = "error",
    flagged: Collection | None = None,
    ties: TieRule = "auto",
) -> pd.DataFrame:
    """One row per labelled item (first-appearance order): <item>, label, confidence, n_labels,
    source ("expert", "gold", "people", "judges" or "people+judges") and method (what ran).

    gold: item -> true label, held fixed (those items take it, confidence 1). flagged: annotator
    ids the gold questions flagged; their labels are left out, and an item only they labelled has
    label None (source "flagged") rather than a label from nobody; so does an item with no label
    at all (source "unlabelled"). on_duplicate: what to do with an
    annotator labelling an item twice, as in Annotations.from_frame ("keep" counts both, as
    crowd-kit does). confidence: the posterior of the label (Dawid-Skene), or its share of the
    votes (majority, and the experts' own vote)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of annotations, got {type(df).__name__}")
    for col in (item, annotator, label):
        if col not in df.columns:
            raise QualityInputError(f"annotations have no column {col!r} (columns are {', '.join(map(str, df.columns))}); pass item=, annotator=, label=")
    if len(df) == 0:
        return _empty(item)
    roles = _roles(df, role)
    labelled = df[label].notna().to_numpy()
    left_out = np.zeros(len(df), dtype=bool)
    if flagged:
        left_out = df[annotator].isin(list(flagged)).to_numpy() & (roles == "annotator")
    expert = (roles == "expert") & labelled
    workers = ~expert & ~left_out & labelled
    parts = []
    if expert.any():
        ex = majority_vote(df[expert], item=item, annotator=annotator, label=label, categories=categories, ties=ties)
        parts.append(ex.assign(source="expert", method="expert"))
    if workers.any():
        crowd = _crowd(df[workers], roles[workers], item=item, annotator=annotator, label=label, gold=gold, method=method,
                       categories=categories, on_duplicate=on_duplicate, ties=ties)
        parts.append(crowd)
    items = pd.Index(pd.unique(df[item]), name=item)
    out = pd.concat(parts, ignore_index=True) if parts else _empty(item)
    out = out.drop_duplicates(item, keep="first")  # an expert's row comes first and wins
    nobody = items.difference(pd.Index(out[item]), sort=False)
    if len(nobody):
        by_flagged = nobody.isin(pd.Index(df.loc[left_out & labelled, item]))
        flagged_only = pd.DataFrame({item: nobody.to_numpy(), "label": None, "confidence": np.nan, "n_labels": 0,
                                     "source": np.where(by_flagged, "flagged", "unlabelled").astype(object), "method": None})
        out = pd.concat([out, flagged_only], ignore_index=True)
    out = out.set_index(item).reindex(items).reset_index()
    out["n_labels"] = out["n_labels"].astype("int64")
    return out[[item, *FINAL_COLUMNS]]
