"""Cohen's kappa equals scikit-learn (all weights), the pair table equals a loop over it, Fleiss'
kappa equals statsmodels, and the PandaLM demo batch reproduces the published kappas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from prefpipe.core.labels import SCALE
from prefpipe.quality import AgreementUndefinedError, QualityInputError, cohens_kappa, cohens_kappa_table, fleiss_kappa, fleiss_kappa_estimate
from prefpipe_tests.quality._data import load_pandalm


def noisy_pair(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, k, n)
    b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, n))
    return a, b


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(4))
def test_cohens_kappa_equals_sklearn(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = noisy_pair(rng, int(rng.integers(20, 400)), int(rng.integers(2, 6)))
    assert cohens_kappa(a, b, weights) == pytest.approx(cohen_kappa_score(a, b, weights=weights), abs=1e-12)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_scale_labels_weight_by_scale_distance(weights: str | None) -> None:
    rng = np.random.default_rng(9)
    a, b = noisy_pair(rng, 200, 3)
    sa, sb = np.asarray(SCALE)[a * 2], np.asarray(SCALE)[b * 2]  # only A>>B, A=B, B>>A used
    expected = cohen_kappa_score(sa, sb, weights=weights, labels=list(SCALE))
    assert cohens_kappa(sa, sb, weights) == pytest.approx(expected, abs=1e-12)


def test_missing_labels_drop_the_item() -> None:
    a = ["A>B", "B>A", None, "A=B", "A>B"]
    b = ["A>B", "B>A", "A>B", np.nan, "B>A"]
    assert cohens_kappa(a, b) == pytest.approx(cohen_kappa_score(["A>B", "B>A", "A>B"], ["A>B", "B>A", "B>A"]))


def test_cohens_kappa_bad_input() -> None:
    with pytest.raises(QualityInputError, match="aligned"):
        cohens_kappa([1, 2], [1])
    with pytest.raises(AgreementUndefinedError, match="chance agreement is 1"):
        cohens_kappa([1, 1, 1], [1, 1, 1])
    with pytest.raises(AgreementUndefinedError, match="no item"):
        cohens_kappa([1, None], [None, 2])
    with pytest.raises(ValueError, match="weights must be"):
        cohens_kappa([1, 2], [2, 1], "cubic")  # type: ignore[arg-type]


def random_long(rng: np.random.Generator, n_items: int, n_ann: int, per_item: int, k: int) -> pd.DataFrame:
    ann = np.argsort(rng.random((n_items, n_ann)), axis=1)[:, :per_item]
    truth = rng.integers(0, k, n_items)
    label = np.where(rng.random((n_items, per_item)) < 0.7, truth[:, None], rng.integers(0, k, (n_items, per_item)))
    return pd.DataFrame(
        {
            "pair_id": np.repeat([f"p{i}" for i in range(n_items)], per_item),
            "annotator_id": [f"a{j}" for j in ann.ravel()],
            "label": label.ravel(),
        }
    )


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_table_equals_loop_over_sklearn(weights: str | None) -> None:
    df = random_long(np.random.default_rng(1), n_items=400, n_ann=6, per_item=3, k=4)
    table = cohens_kappa_table(df, min_shared=1, weights=weights)
    wide = df.pivot(index="pair_id", columns="annotator_id", values="label")
    assert len(table) == 15
    for row in table.itertuples():
        both = wide[[row.annotator_a, row.annotator_b]].dropna()
        assert row.n_shared == len(both)
        expected = cohen_kappa_score(both.iloc[:, 0], both.iloc[:, 1], weights=weights, labels=[0, 1, 2, 3])
        assert row.kappa == pytest.approx(expected, abs=1e-12)
        assert row.agreement == pytest.approx((both.iloc[:, 0] == both.iloc[:, 1]).mean())


def test_table_min_shared_and_intervals() -> None:
    df = random_long(np.random.default_rng(2), n_items=300, n_ann=8, per_item=3, k=5)
    full = cohens_kappa_table(df, min_shared=1)
    some = cohens_kappa_table(df, min_shared=35, n_boot=300, seed=4)
    assert set(some["n_shared"]) and some["n_shared"].min() >= 35
    assert len(some) == int((full["n_shared"] >= 35).sum())
    assert (some["ci_low"] <= some["kappa"]).all() and (some["kappa"] <= some["ci_high"]).all()
    again = cohens_kappa_table(df, min_shared=35, n_boot=300, seed=4)
    pd.testing.assert_frame_equal(some, again)


def test_table_reports_undefined_pairs_as_nan_with_reason() -> None:
    df = pd.DataFrame({"pair_id": ["p1", "p1", "p2", "p2"], "annotator_id": ["a", "b", "a", "b"], "label": ["A>B"] * 4})
    table = cohens_kappa_table(df, min_shared=1)
    assert np.isnan(table.loc[0, "kappa"]) and "undefined" in table.loc[0, "note"]


@pytest.mark.parametrize("seed", range(4))
def test_fleiss_equals_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    per_item = int(rng.integers(2, 6))
    df = random_long(rng, n_items=int(rng.integers(20, 300)), n_ann=per_item + 3, per_item=per_item, k=int(rng.integers(2, 6)))
    raters = df.assign(r=df.groupby("pair_id").cumcount()).pivot(index="pair_id", columns="r", values="label").to_numpy()
    assert fleiss_kappa(df) == pytest.approx(sm_fleiss_kappa(aggregate_raters(raters)[0]), abs=1e-12)


def test_fleiss_with_unequal_label_counts_uses_per_item_counts() -> None:
    # item 1: 3 labels (2 agree), item 2: 2 labels (agree), item 3: 1 label (left out)
    df = pd.DataFrame(
        {
            "pair_id": ["1", "1", "1", "2", "2", "3"],
            "annotator_id": ["a", "b", "c", "a", "b", "a"],
            "label": ["x", "x", "y", "y", "y", "x"],
        }
    )
    observed = ((2 * 1) / (3 * 2) + (2 * 1) / (2 * 1)) / 2
    share_x, share_y = 2 / 5, 3 / 5
    chance = share_x**2 + share_y**2
    assert fleiss_kappa(df) == pytest.approx((observed - chance) / (1 - chance), abs=1e-12)
    est = fleiss_kappa_estimate(df, n_boot=50)
    assert est.n_items == 2


def test_fleiss_undefined_when_one_category() -> None:
    df = pd.DataFrame({"pair_id": ["1", "1"], "annotator_id": ["a", "b"], "label": ["x", "x"]})
    with pytest.raises(AgreementUndefinedError):
        fleiss_kappa(df)


def test_pandalm_demo_reproduces_published_kappas(shared_data) -> None:
    """PandaLM README: 0.85 (A1-A2), 0.88 (A1-A3), 0.86 (A2-A3)."""
    df = load_pandalm(shared_data)
    table = cohens_kappa_table(df).set_index(["annotator_a", "annotator_b"])["kappa"]
    assert round(table[("annotator1", "annotator2")], 2) == 0.85
    assert round(table[("annotator1", "annotator3")], 2) == 0.88
    assert round(table[("annotator2", "annotator3")], 2) == 0.86
    wide = df.pivot(index="pair_id", columns="annotator_id", values="label")
    assert table[("annotator1", "annotator2")] == pytest.approx(cohen_kappa_score(wide["annotator1"], wide["annotator2"]), abs=1e-12)


def test_table_does_not_depend_on_row_order() -> None:
    df = random_long(np.random.default_rng(6), n_items=200, n_ann=5, per_item=3, k=3)
    grouped = cohens_kappa_table(df, min_shared=1)
    shuffled = cohens_kappa_table(df.sample(frac=1.0, random_state=3), min_shared=1)
    for t in (grouped, shuffled):  # orientation follows first appearance; kappa is symmetric
        t["pair"] = [frozenset(p) for p in zip(t["annotator_a"], t["annotator_b"])]
    merged = grouped.merge(shuffled, on="pair", suffixes=("", "_s"))
    assert len(merged) == len(grouped) == 10
    np.testing.assert_allclose(merged["kappa"], merged["kappa_s"], atol=1e-12)
    assert (merged["n_shared"] == merged["n_shared_s"]).all()
