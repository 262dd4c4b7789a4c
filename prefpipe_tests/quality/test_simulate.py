"""The simulated batches the benchmark uses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.core.labels import SCALE
from prefpipe.quality.simulate import simulate_batch
from prefpipe.core.schemas import HUMAN_ANNOTATIONS


def test_shape_distinct_annotators_and_determinism() -> None:
    a = simulate_batch(2000, n_annotators=12, labels_per_pair=4, seed=3)
    df = a.annotations
    assert len(df) == 8000 and df["pair_id"].nunique() == 2000
    assert not df.duplicated(["pair_id", "annotator_id"]).any()
    assert set(df["label"]) <= set(SCALE)
    assert set(df.columns) <= set(HUMAN_ANNOTATIONS)
    gold = df[df["is_gold"]]
    assert 0.05 < gold["pair_id"].nunique() / 2000 < 0.15
    assert (gold["gold_label"].to_numpy() == a.truth.reindex(gold["pair_id"]).to_numpy()).all()
    b = simulate_batch(2000, n_annotators=12, labels_per_pair=4, seed=3)
    pd.testing.assert_frame_equal(df, b.annotations)
    np.testing.assert_allclose(a.confusion.sum(axis=2), 1.0)


def test_careful_annotators_agree_with_truth_more_than_random_ones() -> None:
    batch = simulate_batch(5000, n_annotators=20, seed=1)
    df = batch.annotations
    right = df["label"].to_numpy() == batch.truth.reindex(df["pair_id"]).to_numpy()
    by_kind = pd.Series(right).groupby(batch.kinds.reindex(df["annotator_id"]).to_numpy()).mean()
    assert by_kind["careful"] > 0.75 and by_kind["random"] < 0.3
