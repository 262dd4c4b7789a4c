"""How much a judge's verdicts depend on where and how long a response is.

Computed from the per-order verdicts (one row per pair, judge and order shown):
- position_flip_rate: among pairs judged in both orders, how often the direction changed when
  the responses swapped slots (a position-consistent judge: 0);
- first_slot_rate: among non-tie verdicts, how often the judge preferred whichever response it was
  shown first (no position bias: about 0.5);
- longer_rate: among non-tie verdicts on responses of different length, how often it preferred the
  longer one (no length bias: about the share of pairs where the longer one really is better);
- tie_rate, and the count of each row status.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.core.labels import DIRECTION

BIAS_COLUMNS = (
    "judge",
    "pairs",
    "ok",
    "unparsed",
    "inconsistent",
    "failed",
    "pending",
    "orders_parsed",
    "position_flip_rate",
    "first_slot_rate",
    "longer_rate",
    "tie_rate",
)


def _rate(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else float("nan")


def bias_stats(verdicts: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per judge with the columns of BIAS_COLUMNS."""
    rows = []
    for judge in sorted(set(labels["judge"]) | set(verdicts["judge"])):
        v = verdicts[(verdicts["judge"] == judge) & (verdicts["status"] == "ok")]
        lab = labels[labels["judge"] == judge]
        raw_dir = v["raw_label"].map(DIRECTION)
        decided = v[raw_dir != "="]
        pivot = v.pivot_table(index="pair_id", columns="order", values="label", aggfunc="first")
        if {"ab", "ba"} <= set(pivot.columns):
            both = pivot.dropna(subset=["ab", "ba"])
            flips = both["ab"].map(DIRECTION) != both["ba"].map(DIRECTION)
        else:
            flips = pd.Series(dtype=bool)
        lengths = decided[["len_a", "len_b"]].to_numpy(dtype="float64")
        differ = lengths[:, 0] != lengths[:, 1]
        prefers_a = decided["label"].map(DIRECTION).to_numpy() == "A"
        longer_is_a = lengths[:, 0] > lengths[:, 1]
        counts = lab["status"].value_counts()
        rows.append(
            {
                "judge": judge,
                "pairs": int(len(lab)),
                **{s: int(counts.get(s, 0)) for s in ("ok", "unparsed", "inconsistent", "failed", "pending")},
                "orders_parsed": int(len(v)),
                "position_flip_rate": _rate(flips),
                "first_slot_rate": _rate(raw_dir[raw_dir != "="] == "A"),
                "longer_rate": float(np.mean(prefers_a[differ] == longer_is_a[differ])) if differ.any() else float("nan"),
                "tie_rate": _rate(raw_dir == "="),
            }
        )
    return pd.DataFrame(rows, columns=list(BIAS_COLUMNS))
