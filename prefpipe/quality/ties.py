"""Which label wins when several tie for an item's top score.

A tie rule is not a detail: on RTE 8% of the items tie under majority vote, and the old rule
(the batch's most used label wins) cost 4.4 points there against a coin flip, because it pushes
every tied item towards the same class. The rules:

- "median" (the default on the five-point scale): the median of the item's labels on the scale's
  order. With an even count whose two middle labels differ, their midpoint; where that falls
  between two points, the one nearer A=B. So one A>B against one B>A is A=B (the people disagree
  on the direction), and A>>B against A>B is A>B. The label may be one nobody chose outright
  (A=B above): on an ordered scale the median is the honest summary of a split.
- "random" (the default on nominal labels): one of the tied labels, uniformly, from a hash of the
  item id, so a rerun gives the same answer and the expected accuracy is exactly a random
  tie-break's, the reference the crowd-sourcing literature scores majority vote against.
- "batch": the category used most often in the whole batch, then category order (the rule before
  this module; kept for comparison).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import pandas as pd

from prefpipe.quality._frames import Annotations

TieRule = Literal["auto", "median", "random", "batch"]
TIE_RULES: tuple[str, ...] = get_args(TieRule)


def resolve_rule(ann: Annotations, ties: str) -> str:
    """The rule `ties` stands for on these annotations ("auto": median on the scale, else random)."""
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {', '.join(TIE_RULES)}, not {ties!r}")
    if ties == "auto":
        return "median" if ann.on_scale else "random"
    if ties == "median" and not ann.on_scale:
        raise ValueError(f"ties='median' needs the five-point scale's categories in order; these are {list(ann.categories)[:6]}")
    return ties


def batch_rank(ann: Annotations) -> np.ndarray:
    """Rank of each category for the "batch" rule (0 wins): most used in the batch first, then order."""
    freq = np.bincount(ann.label, minlength=ann.n_categories)
    order = np.lexsort((np.arange(ann.n_categories), -freq))
    rank = np.empty(ann.n_categories, dtype=np.int64)
    rank[order] = np.arange(ann.n_categories)
    return rank


def tied_mask(scores: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """Categories within `rtol` of each row's maximum (weighted sums are floats)."""
    top = scores.max(axis=1, keepdims=True)
    return scores >= top - rtol * np.abs(top)


def scale_median(counts: np.ndarray) -> np.ndarray:
    """Per item, the median of its labels' codes on the scale (module docstring), as a code;
    -1 for an item with no label."""
    n = counts.sum(axis=1)
    cum = counts.cumsum(axis=1)
    k = counts.shape[1]
    lower = (cum >= ((n + 1) // 2)[:, None]).argmax(axis=1)  # the (n+1)//2-th label
    upper = (cum >= (n // 2 + 1)[:, None]).argmax(axis=1)  # the n//2+1-th label
    mid2 = lower + upper  # twice the midpoint
    centre2 = k - 1  # twice the centre code
    half = mid2 % 2 == 1
    toward = np.where(mid2 > centre2, -1, 1)  # a half step rounds towards the centre
    median = np.where(half, (mid2 + toward) // 2, mid2 // 2)
    return np.where(n > 0, median, -1)


def _hash_uniform(items: pd.Index) -> np.ndarray:
    """A reproducible uniform number in [0, 1) per item id."""
    hashed = pd.util.hash_pandas_object(pd.Series(items.astype(str)), index=False).to_numpy(dtype=np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def choose_labels(ann: Annotations, scores: np.ndarray, ties: str = "auto", *, rtol: float = 1e-12) -> np.ndarray:
    """The winning category code per item of `scores` (items x K) under the tie rule."""
    rule = resolve_rule(ann, ties)
    tied = tied_mask(scores, rtol)
    if rule == "batch":
        ranked = np.where(tied, batch_rank(ann)[None, :], np.iinfo(np.int64).max)
        return ranked.argmin(axis=1)
    winner = scores.argmax(axis=1)
    several = tied.sum(axis=1) > 1
    if not several.any():
        return winner
    rows = np.flatnonzero(several)
    if rule == "median":
        winner[rows] = np.maximum(scale_median(ann.counts()[rows]), 0)
        return winner
    n_tied = tied[rows].sum(axis=1)
    pick = np.minimum((_hash_uniform(ann.items[rows]) * n_tied).astype(np.int64), n_tied - 1)
    position = np.cumsum(tied[rows], axis=1) - 1  # each tied category's rank among the tied
    winner[rows] = (tied[rows] & (position == pick[:, None])).argmax(axis=1)
    return winner
