"""Long-format annotations encoded once as integer arrays, so every metric is a few numpy calls.

Every public function in prefpipe.quality takes either a DataFrame with one row per label (and the
names of its item, annotator and label columns) or an `Annotations` made from one; encoding once
and passing the `Annotations` on saves the factorisation when a caller computes many figures.

Category order (it matters for ordinal alpha, weighted kappa and tie-breaking):
- `categories=` given: that order; a present label outside it raises UnknownLabelError.
- otherwise, when every present label is a string on the five-point scale: the whole scale in its
  ordinal order, A>>B first (prefpipe.core.labels.SCALE), even if some points are unused.
- otherwise: the sorted unique present values (numbers numerically, strings lexically).

Missing labels (None / NaN / pd.NA) are dropped: Krippendorff's alpha, the kappas and the votes are
all defined over the labels that exist. Their items and annotators are still kept in `items` and
`annotators`, so aggregation can report an item that has no label (n_labels 0) instead of losing
it. A missing item or annotator id is an error. One annotator labelling the same item twice is an
error unless `on_duplicate` says which label to keep ("first", "last"), or "keep" to count every
row as a vote (public crowd data sets such as S_Rel repeat some worker-item rows, and crowd-kit
counts them all). Agreement metrics refuse annotations kept that way: an annotator agreeing with
themselves is not agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from prefpipe.core.labels import SCALE
from prefpipe.quality.errors import DuplicateLabelError, EmptyAnnotationsError, QualityInputError, UnknownLabelError

OnDuplicate = Literal["error", "first", "last", "keep"]


@dataclass(frozen=True, eq=False)
class Annotations:
    """Integer-coded labels: row r says annotator `annotator[r]` gave item `item[r]` the category
    `label[r]` (an index into `categories`). Only rows with a present label are stored."""

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    items: pd.Index
    annotators: pd.Index
    categories: tuple
    item_name: str = "pair_id"
    annotator_name: str = "annotator_id"
    label_name: str = "label"
    n_missing: int = 0
    has_duplicates: bool = False
    rows: np.ndarray | None = None
    """Position of each stored label in the frame it came from (to align other columns)."""

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def n_labels(self) -> int:
        return int(self.label.size)

    @property
    def on_scale(self) -> bool:
        """True when the categories are exactly the five-point scale in its order."""
        return tuple(self.categories) == SCALE

    def numeric_values(self) -> np.ndarray:
        """The number each category stands for (interval level): the scale's codes 0..4, or the
        numeric categories themselves. Raises for other strings (they have no distance)."""
        if self.on_scale:
            return np.arange(len(SCALE), dtype="float64")
        try:
            return np.asarray(self.categories, dtype="float64")
        except (TypeError, ValueError):
            raise QualityInputError(
                f"{self.label_name}: categories {list(self.categories)[:5]} are not numbers, so an "
                "interval distance is undefined; use level='ordinal' or 'nominal'"
            ) from None

    def counts(self) -> np.ndarray:
        """Item-by-category label counts, shape (n_items, n_categories), int64."""
        k = self.n_categories
        flat = np.bincount(self.item * k + self.label, minlength=self.n_items * k)
        return flat.reshape(self.n_items, k)

    def labels_per_item(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        item: str = "pair_id",
        annotator: str = "annotator_id",
        label: str = "label",
        categories: Sequence | None = None,
        on_duplicate: OnDuplicate = "error",
    ) -> Annotations:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of annotations, got {type(df).__name__}")
        missing_cols = [c for c in (item, annotator, label) if c not in df.columns]
        if missing_cols:
            raise QualityInputError(
                f"annotations have no column(s) {', '.join(map(repr, missing_cols))} "
                f"(columns are {', '.join(map(str, df.columns))}); pass item=, annotator=, label="
            )
        if on_duplicate not in ("error", "first", "last", "keep"):
            raise ValueError(f"on_duplicate must be 'error', 'first', 'last' or 'keep', not {on_duplicate!r}")
        if len(df) == 0:
            raise EmptyAnnotationsError("annotations frame is empty: no rows")
        item_codes, items = pd.factorize(df[item], sort=False)
        ann_codes, annotators = pd.factorize(df[annotator], sort=False)
        for col, codes in ((item, item_codes), (annotator, ann_codes)):
            if codes.min() < 0:
                nulls = codes < 0
                raise QualityInputError(
                    f"{col}: {int(nulls.sum())} row(s) have no {col} (first at row {int(np.flatnonzero(nulls)[0])})"
                )
        item_codes = item_codes.astype(np.int64, copy=False)
        ann_codes = ann_codes.astype(np.int64, copy=False)

        dup = _duplicate_rows(item_codes, ann_codes, len(annotators))
        keep = np.ones(len(df), dtype=bool)
        if dup is not None:
            if on_duplicate == "error":
                first = int(np.flatnonzero(dup)[0])
                raise DuplicateLabelError(
                    f"{annotator} {df[annotator].iloc[first]!r} labelled {item} {df[item].iloc[first]!r} "
                    f"more than once ({int(dup.sum())} rows involved, first at row {first}); "
                    "pass on_duplicate='first', 'last' or 'keep' to Annotations.from_frame"
                )
            if on_duplicate != "keep":
                key = item_codes * len(annotators) + ann_codes
                keep = ~pd.Series(key).duplicated(keep=on_duplicate).to_numpy()

        label_codes, cats = _encode_labels(df[label], label, categories)
        present = keep & (label_codes >= 0)
        n_missing = int((keep & (label_codes < 0)).sum())
        if not present.any():
            raise EmptyAnnotationsError(f"{label}: no row has a label ({len(df)} row(s), all missing)")
        return cls(
            item=item_codes[present],
            annotator=ann_codes[present],
            label=label_codes[present],
            items=pd.Index(items, name=item),
            annotators=pd.Index(annotators, name=annotator),
            categories=tuple(cats),
            item_name=item,
            annotator_name=annotator,
            label_name=label,
            n_missing=n_missing,
            has_duplicates=dup is not None and on_duplicate == "keep",
            rows=np.flatnonzero(present),
        )


def _duplicate_rows(item_codes: np.ndarray, ann_codes: np.ndarray, n_annotators: int) -> np.ndarray | None:
    """Mask of rows whose (item, annotator) occurs more than once, or None when there are none.

    Fast path for the usual case of few labels per item: order rows by item (free when the frame
    is already grouped by item, as factorize numbers items in order of appearance) and compare
    each row with the next few rows of the same item. Items with many labels use a hash table."""
    if item_codes.size < 2:
        return None
    grouped = bool(np.all(item_codes[1:] >= item_codes[:-1]))
    per_item = np.bincount(item_codes)
    if per_item.max() <= 32:
        order = None if grouped else np.argsort(item_codes, kind="stable")
        items = item_codes if order is None else item_codes[order]
        anns = ann_codes if order is None else ann_codes[order]
        hit = np.zeros(items.size, dtype=bool)
        for d in range(1, int(per_item.max())):
            same = (items[d:] == items[:-d]) & (anns[d:] == anns[:-d])
            if same.any():
                hit[d:] |= same
                hit[:-d] |= same
        if not hit.any():
            return None
        if order is None:
            return hit
        out = np.zeros_like(hit)
        out[order] = hit
        return out
    key = item_codes * n_annotators + ann_codes
    dup = pd.Series(key).duplicated(keep=False).to_numpy()
    return dup if dup.any() else None


def _encode_labels(values: pd.Series, field: str, categories: Sequence | None) -> tuple[np.ndarray, list]:
    """Codes into the category order (module docstring), -1 where missing."""
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    uniques = list(uniques)
    if categories is not None:
        cats = list(categories)
        if len(set(cats)) != len(cats):
            raise QualityInputError(f"{field}: categories {cats} contain duplicates")
    else:
        cats = infer_categories(uniques, field=field)
    position = {c: i for i, c in enumerate(cats)}
    lookup = np.empty(len(uniques) + 1, dtype=np.int64)
    lookup[-1] = -1  # the NA sentinel (-1) indexes the last slot
    unknown = []
    for j, u in enumerate(uniques):
        pos = position.get(u)  # 1.0 finds 1: equal numbers hash alike
        if pos is None:
            unknown.append(u)
            pos = -1
        lookup[j] = pos
    if unknown:
        bad = np.isin(codes, [uniques.index(u) for u in unknown])
        raise UnknownLabelError(
            f"{field}: {len(unknown)} unknown label value(s) {unknown[:5]!r} outside the categories "
            f"{cats} ({int(bad.sum())} row(s), first at row {int(np.flatnonzero(bad)[0])})"
        )
    return lookup[codes], cats


def infer_categories(values: Sequence, *, field: str = "label") -> list:
    """Category order for present `values` when the caller gave none (module docstring)."""
    present = [v for v in values if not _is_missing(v)]
    if not present:
        return []
    if all(isinstance(v, str) for v in present) and set(present) <= set(SCALE):
        return list(SCALE)
    try:
        return sorted(set(present))
    except TypeError:
        kinds = sorted({type(v).__name__ for v in present})
        raise QualityInputError(
            f"{field}: labels mix types ({', '.join(kinds)}) that have no common order; pass categories="
        ) from None


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def as_annotations(
    data: pd.DataFrame | Annotations,
    *,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    for_agreement: bool = False,
) -> Annotations:
    """Encode `data` unless it already is an Annotations (then it is returned unchanged).
    `for_agreement` refuses annotations that keep repeated (item, annotator) labels."""
    if isinstance(data, Annotations):
        if for_agreement and data.has_duplicates:
            raise DuplicateLabelError(
                "agreement needs at most one label per annotator and item; these annotations were encoded "
                "with on_duplicate='keep' (use 'first' or 'last' for agreement)"
            )
        if categories is not None and tuple(categories) != data.categories:
            raise QualityInputError(
                f"categories {list(categories)} differ from the Annotations' {list(data.categories)}; "
                "encode again with Annotations.from_frame(..., categories=...)"
            )
        return data
    return Annotations.from_frame(data, item=item, annotator=annotator, label=label, categories=categories)
