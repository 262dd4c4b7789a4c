"""The resampling shortcuts are exact and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from prefpipe.quality.bootstrap import distinct_patterns, pattern_weights, percentile_interval, table_intervals
from prefpipe.quality.kappa import kappa_from_tables


def test_distinct_patterns_count_every_item() -> None:
    counts = np.array([[2, 1, 0], [0, 3, 0], [2, 1, 0], [1, 1, 1]])
    patterns, freq = distinct_patterns(counts)
    assert freq.sum() == 4 and len(patterns) == 3
    assert freq[(patterns == [2, 1, 0]).all(axis=1)][0] == 2


def test_pattern_weights_resample_the_item_count() -> None:
    w = pattern_weights(np.array([5, 3, 2]), 100, seed=0)
    assert w.shape == (100, 3) and (w.sum(axis=1) == 10).all()
    np.testing.assert_array_equal(w, pattern_weights(np.array([5, 3, 2]), 100, seed=0))


def test_percentile_interval_ignores_undefined_resamples() -> None:
    low, high, n = percentile_interval(np.array([0.0, 1.0, np.nan, 2.0, 3.0, 4.0]), ci=0.5)
    assert n == 5 and low == pytest.approx(1.0) and high == pytest.approx(3.0)
    with pytest.raises(ValueError):
        percentile_interval(np.zeros(3), ci=1.5)


def test_table_intervals_match_a_brute_force_bootstrap() -> None:
    """Same-size groups share draws; each group's interval still matches resampling its own items."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 3, 200))
    table = np.bincount(a * 3 + b, minlength=9)
    tables = np.stack([table, table[::-1]])

    def stat(t: np.ndarray) -> np.ndarray:
        return kappa_from_tables(t.reshape(*t.shape[:-1], 3, 3))

    low, high = table_intervals(tables, stat, n_boot=4000, seed=1)
    picks = rng.integers(0, 200, (4000, 200))
    cells = a[picks] * 3 + b[picks]
    brute = np.stack([np.bincount(c, minlength=9) for c in cells])
    b_low, b_high, _ = percentile_interval(stat(brute.astype(float)))
    assert low[0] == pytest.approx(b_low, abs=0.02) and high[0] == pytest.approx(b_high, abs=0.02)
    assert low[0] < stat(table.astype(float)) < high[0]


def test_large_groups_use_direct_multinomial() -> None:
    table = np.array([[30_000, 1_000, 1_000, 30_000]])
    low, high = table_intervals(table, lambda t: kappa_from_tables(t.reshape(*t.shape[:-1], 2, 2)), n_boot=200, seed=0)
    value = kappa_from_tables(table.reshape(2, 2).astype(float))
    assert low[0] < value < high[0] and high[0] - low[0] < 0.02
