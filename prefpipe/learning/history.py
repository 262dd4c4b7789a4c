"""A reward model trained on the final labels the warehouse already holds.

Routing under a human budget and best-of-n / rejection sampling need a reward model before this
batch has labels of its own, so they learn from every other batch's final labels. With too few
directional labels there is no model (the callers fall back to the judge's confidence or the judge
scorer) rather than a model that would rank at random.
"""

from __future__ import annotations

import pandas as pd

from prefpipe.core.labels import DIRECTION
from prefpipe.learning.reward_model import RewardModel

MIN_DIRECTIONAL_LABELS = 200


def training_frames(pairs: pd.DataFrame, final_labels: pd.DataFrame, *, exclude_batch: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs and their directional final labels from every batch but `exclude_batch`."""
    if exclude_batch is not None:
        pairs = pairs[pairs["batch_id"] != exclude_batch]
        final_labels = final_labels[final_labels["batch_id"] != exclude_batch]
    labelled = final_labels[final_labels["label"].map(DIRECTION).isin(["A", "B"])]
    keys = ["batch_id", "pair_id"]
    merged = pairs.merge(labelled[keys + ["label"]], on=keys, how="inner")
    merged["pair_id"] = merged["batch_id"].astype(str) + "/" + merged["pair_id"].astype(str)  # ids are unique per batch only
    return merged[["pair_id", "prompt", "response_a", "response_b"]], merged[["pair_id", "label"]]


def reward_model_from_history(
    pairs: pd.DataFrame, final_labels: pd.DataFrame, *, exclude_batch: str | None, min_labels: int = MIN_DIRECTIONAL_LABELS
) -> RewardModel | None:
    """A fitted RewardModel, or None when fewer than `min_labels` directional labels exist."""
    train_pairs, train_labels = training_frames(pairs, final_labels, exclude_batch=exclude_batch)
    if len(train_labels) < min_labels:
        return None
    return RewardModel().fit_frames(train_pairs, train_labels)
