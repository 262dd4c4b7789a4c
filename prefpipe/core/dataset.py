"""The preference dataset trainers load: prompt, chosen, rejected.

A final label that prefers A makes (chosen = A, rejected = B), one that prefers B the reverse; ties
carry no preference and are left out (DPO and reward-model losses need a direction). The margin is
the label's strength (1 for A>B, 2 for A>>B) times its confidence, so a trainer that weights by
margin trusts a unanimous strong preference most; a label without a confidence gets no margin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.labels import DIRECTION, STRENGTH


def preference_rows(final_labels: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Join final labels to their pairs and orient each into chosen / rejected."""
    merged = final_labels.merge(pairs[["pair_id", "prompt", "response_a", "response_b"]], on="pair_id", how="inner", validate="one_to_one")
    direction = merged["label"].map(DIRECTION)
    merged = merged[direction.isin(["A", "B"])].copy()
    a_wins = direction.loc[merged.index].eq("A").to_numpy()
    merged["chosen"] = np.where(a_wins, merged["response_a"], merged["response_b"])
    merged["rejected"] = np.where(a_wins, merged["response_b"], merged["response_a"])
    strength = merged["label"].map(STRENGTH).astype("float64")
    merged["margin"] = strength * merged["confidence"].astype("float64")
    merged["label_source"] = merged["source"].astype("string") + ":" + merged["method"].astype("string")
    return schemas.conform(merged.sort_values("pair_id"), schemas.PREFERENCE_DATASET, name="preference_dataset")
