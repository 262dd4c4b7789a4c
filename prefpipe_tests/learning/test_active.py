from __future__ import annotations

import numpy as np
import pytest

from prefpipe.learning import active


def blobs(n_clusters: int, per: int, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 20
    labels = np.repeat(np.arange(n_clusters), per)
    x = (centres[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32)
    return x, labels


@pytest.mark.parametrize("strategy", active.STRATEGIES)
def test_every_strategy_respects_the_budget_without_duplicates(strategy):
    rng = np.random.default_rng(1)
    x, _ = blobs(12, 50)
    cands = active.Candidates(gap=rng.standard_normal(len(x)), embedding=x)
    for budget in (0, 1, 37, 600, 10_000):
        picked = active.select(cands, budget, strategy, seed=3)
        assert len(picked) == min(budget, len(x))
        assert len(np.unique(picked)) == len(picked)
        assert picked.dtype == np.int64 and (picked >= 0).all() and (picked < len(x)).all()
    assert np.array_equal(active.select(cands, 37, strategy, seed=3), active.select(cands, 37, strategy, seed=3))


def test_uncertainty_takes_the_smallest_gaps_first_and_missing_scores_before_all():
    gap = np.array([3.0, -0.1, 0.5, np.nan, -2.0, 0.05])
    picked = active.select(active.Candidates(gap=gap), 4, "uncertainty")
    assert picked.tolist() == [3, 5, 1, 2]
    u = active.uncertainty_from_gap(gap)
    assert u[3] == 1.0 and u[5] > u[1] > u[2] > u[0]


def test_diversity_picks_one_item_per_cluster_near_its_centre():
    x, labels = blobs(10, 40)
    picked = active.select(active.Candidates(embedding=x), 10, "diversity", seed=0)
    assert sorted(labels[picked]) == list(range(10))
    # each pick is among the items nearest its cluster's mean
    for i in picked:
        members = np.flatnonzero(labels == labels[i])
        d = np.linalg.norm(x[members] - x[members].mean(axis=0), axis=1)
        assert np.linalg.norm(x[i] - x[members].mean(axis=0)) <= np.quantile(d, 0.25)


def test_two_level_diversity_also_spreads_over_clusters():
    x, labels = blobs(16, 60, seed=2)
    picked = active.diversity(x, 16, seed=0, flat_limit=0)  # force the large-scale path
    assert len(np.unique(picked)) == 16
    assert len(np.unique(labels[picked])) >= 14  # sqrt-sized coarse split: near one per cluster


def test_largest_remainder_split_is_exact_and_capped():
    share = active._largest_remainder(np.array([5, 1, 100, 0]), 20)
    assert share.sum() == 20 and (share <= [5, 1, 100, 0]).all()
    assert active._largest_remainder(np.array([2, 3]), 10).tolist() == [2, 3]


@pytest.mark.parametrize("seed", range(4))
def test_lazy_hybrid_equals_the_naive_greedy(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1500, 6)).astype(np.float32)
    u = rng.random(1500)
    labelled = rng.standard_normal((4, 6)).astype(np.float32) if seed % 2 else None
    # small shortlist and cache so every level of the lazy search is exercised
    lazy = active.hybrid(u, x, 120, labelled=labelled, seed=seed, shortlist=32, cache=300)
    naive = active.hybrid_naive(u, x, 120, labelled=labelled, seed=seed)
    assert lazy.tolist() == naive.tolist()


def test_hybrid_weights_move_between_uncertainty_and_spread():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    x = (np.eye(8)[labels] * 50 + rng.standard_normal((200, 8))).astype(np.float32)  # clusters ~71 apart
    u = np.where(labels == 0, 0.99, 0.5)  # cluster 0 is the uncertain one
    only_u = active.hybrid(u, x, 10, uncertainty_weight=1.0, diversity_weight=0.0)
    assert set(labels[only_u]) == {0}
    mixed = active.hybrid(u, x, 5, distance_scale=50.0)  # items within a cluster are ~4 apart
    assert sorted(labels[mixed]) == [0, 1, 2, 3, 4]  # the distance bonus outweighs a 0.49 uncertainty edge


def test_hybrid_steers_away_from_labelled_items():
    x, labels = blobs(3, 30)
    labelled = x[labels == 0][:3]
    picked = active.select(
        active.Candidates(gap=np.zeros(len(x)), embedding=x, labelled_embedding=labelled), 2, "hybrid"
    )
    assert 0 not in labels[picked]


def test_missing_inputs_are_named():
    with pytest.raises(ValueError, match="needs candidates.gap"):
        active.select(active.Candidates(embedding=np.zeros((3, 2))), 1, "uncertainty")
    with pytest.raises(ValueError, match="needs candidates.embedding"):
        active.select(active.Candidates(gap=np.zeros(3)), 1, "diversity")
    with pytest.raises(ValueError, match="not one of"):
        active.select(active.Candidates(gap=np.zeros(3)), 1, "magic")
    with pytest.raises(ValueError, match="differ in length"):
        active.Candidates(gap=np.zeros(3), embedding=np.zeros((4, 2)))


def test_candidates_from_texts_with_a_reward_model():
    from prefpipe.learning.reward_model import RewardModel

    prompts = [f"question {i} about {'cats' if i % 2 else 'dogs'}" for i in range(20)]
    a = ["A thorough helpful answer."] * 20
    b = ["No."] * 20
    model = RewardModel().fit(prompts, a, b, ["A>B"] * 20)
    c = active.Candidates.from_texts(prompts, a, b, model=model)
    assert len(c) == 20 and c.embedding.shape == (20, 64) and (c.gap > 0).all()
