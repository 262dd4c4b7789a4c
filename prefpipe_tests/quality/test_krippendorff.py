"""Krippendorff's alpha equals the krippendorff package to 1e-9 and refuses undefined cases."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest

from prefpipe.core.labels import SCALE
from prefpipe.quality import AgreementUndefinedError, Annotations, krippendorff_alpha, krippendorff_alpha_estimate
from prefpipe.quality.bootstrap import distinct_patterns
from prefpipe.quality.krippendorff import alpha_from_coincidences, pattern_coincidences


def long_frame(matrix: np.ndarray, labels: list | None = None) -> pd.DataFrame:
    """annotators x items matrix (NaN = missing) -> one row per cell, missing labels kept as None."""
    a, i = np.indices(matrix.shape)
    values = matrix.ravel()
    out = np.array([None if np.isnan(v) else (labels[int(v)] if labels else v) for v in values], dtype=object)
    return pd.DataFrame({"pair_id": [f"p{j}" for j in i.ravel()], "annotator_id": [f"a{k}" for k in a.ravel()], "label": out})


def random_matrix(rng: np.random.Generator, n_ann: int, n_items: int, k: int, missing: float) -> np.ndarray:
    m = rng.integers(0, k, size=(n_ann, n_items)).astype(float)
    agree = rng.random(n_items) < 0.5  # half the items have a shared "true" value so alpha is not ~0
    m[:, agree] = np.where(rng.random((n_ann, agree.sum())) < 0.7, m[0, agree], m[:, agree])
    m[rng.random(m.shape) < missing] = np.nan
    return m


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", range(6))
def test_equals_krippendorff_package(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = random_matrix(rng, n_ann=int(rng.integers(2, 8)), n_items=int(rng.integers(5, 80)), k=int(rng.integers(2, 6)), missing=0.3)
    expected = krippendorff.alpha(reliability_data=m, level_of_measurement=level)
    assert krippendorff_alpha(long_frame(m), level) == pytest.approx(expected, abs=1e-9)


def test_non_consecutive_numeric_values_use_their_numbers() -> None:
    rng = np.random.default_rng(7)
    m = random_matrix(rng, 4, 50, 4, 0.2)
    m = np.where(np.isnan(m), np.nan, np.array([1.0, 2.0, 5.0, 10.0])[np.nan_to_num(m).astype(int)])
    for level in ("interval", "ordinal", "ratio"):
        assert krippendorff_alpha(long_frame(m), level) == pytest.approx(krippendorff.alpha(m, level_of_measurement=level), abs=1e-9)


def test_scale_labels_use_the_scale_order() -> None:
    rng = np.random.default_rng(3)
    m = random_matrix(rng, 5, 60, 5, 0.25)
    df = long_frame(m, list(SCALE))
    for level in ("ordinal", "interval", "nominal"):
        expected = krippendorff.alpha(m, level_of_measurement=level, value_domain=np.arange(5.0))
        assert krippendorff_alpha(df, level) == pytest.approx(expected, abs=1e-9)


def test_package_doc_example() -> None:
    data = [
        [np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
        [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4],
    ]
    df = long_frame(np.array(data))
    assert round(krippendorff_alpha(df, "nominal"), 6) == 0.691358
    assert round(krippendorff_alpha(df, "interval"), 6) == 0.810845


def test_no_item_with_two_labels_is_undefined() -> None:
    df = pd.DataFrame({"pair_id": ["p1", "p2", "p3"], "annotator_id": ["a", "a", "b"], "label": ["A>B", "B>A", "A=B"]})
    with pytest.raises(AgreementUndefinedError, match="no pair_id holds two or more labels"):
        krippendorff_alpha(df)


def test_single_annotator_is_undefined() -> None:
    df = pd.DataFrame({"pair_id": ["p1", "p2"], "annotator_id": ["a", "a"], "label": ["A>B", "B>A"]})
    with pytest.raises(AgreementUndefinedError):
        krippendorff_alpha(df, "nominal")


def test_all_identical_values_is_undefined_not_one() -> None:
    df = pd.DataFrame({"pair_id": ["p1", "p1", "p2", "p2"], "annotator_id": ["a", "b"] * 2, "label": ["A>B"] * 4})
    with pytest.raises(AgreementUndefinedError, match="expected disagreement is 0"):
        krippendorff_alpha(df)


def test_interval_needs_numbers() -> None:
    df = pd.DataFrame({"pair_id": ["p1", "p1"], "annotator_id": ["a", "b"], "label": ["cat", "dog"]})
    with pytest.raises(ValueError, match="interval distance is undefined"):
        krippendorff_alpha(df, "interval")
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha(df, "cardinal")  # type: ignore[arg-type]


def test_pattern_bootstrap_is_exact_for_a_given_resample() -> None:
    """The statistic from pattern multiplicities equals alpha recomputed on the resampled items."""
    rng = np.random.default_rng(11)
    m = random_matrix(rng, 4, 40, 5, 0.2)
    df = long_frame(m)
    ann = Annotations.from_frame(df)
    counts = ann.counts()
    keep = counts.sum(axis=1) >= 2
    counts = counts[keep]
    patterns, _ = distinct_patterns(counts)
    pick = rng.integers(0, len(counts), len(counts))  # one explicit item resample
    match = (counts[pick][:, None, :] == patterns[None, :, :]).all(axis=2).argmax(axis=1)
    weights = np.bincount(match, minlength=len(patterns)).astype(float)[None, :]
    per = pattern_coincidences(patterns)
    o = (weights @ per.reshape(len(patterns), -1)).reshape(-1, per.shape[1], per.shape[2])
    from_patterns = alpha_from_coincidences(o, "ordinal")[0]
    resampled = m[:, np.flatnonzero(keep)[pick]]  # the same items as new columns
    assert from_patterns == pytest.approx(krippendorff.alpha(resampled, level_of_measurement="ordinal", value_domain=np.arange(5.0)), abs=1e-9)


def test_bootstrap_interval_is_seeded_and_brackets_the_value() -> None:
    rng = np.random.default_rng(5)
    df = long_frame(random_matrix(rng, 3, 300, 5, 0.1), list(SCALE))
    a = krippendorff_alpha_estimate(df, n_boot=400, seed=1)
    b = krippendorff_alpha_estimate(df, n_boot=400, seed=1)
    c = krippendorff_alpha_estimate(df, n_boot=400, seed=2)
    assert a == b
    assert a.ci_low < a.value < a.ci_high
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.n_items == int((Annotations.from_frame(df).counts().sum(axis=1) >= 2).sum())
