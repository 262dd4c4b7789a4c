"""The active-learning bench's summary: how many labels a strategy needs to match random."""

from __future__ import annotations

import numpy as np

from prefpipe.bench.active_learning import labels_to_reach

BUDGETS = [100, 200, 300, 400]


def test_a_curve_must_stay_at_the_target_to_have_reached_it():
    assert labels_to_reach(np.array([0.60, 0.70, 0.71, 0.72]), BUDGETS, 0.70) == 200
    assert labels_to_reach(np.array([0.60, 0.71, 0.65, 0.72]), BUDGETS, 0.70) == 400  # touched at 200, fell back
    assert labels_to_reach(np.array([0.60, 0.71, 0.72, 0.69]), BUDGETS, 0.70) is None  # ends below
    assert labels_to_reach(np.array([0.75, 0.76, np.nan, 0.80]), BUDGETS, 0.70) == 400  # no figure is not a reach
    assert labels_to_reach(np.array([0.75, 0.76, 0.77, 0.80]), BUDGETS, 0.70) == 100
