from __future__ import annotations

import numpy as np
import pytest

from prefpipe.learning.hh_rlhf import load_hh_pairs
from prefpipe.learning.reward_model import NotFitted, RewardModel


def toy(n: int, seed: int = 0):
    """Good answers mention the asked-about thing and explain; bad ones refuse."""
    rng = np.random.default_rng(seed)
    topics = ["bread", "bikes", "taxes", "python", "roses", "chess", "rain", "tea"]
    prompts, a, b, labels = [], [], [], []
    for i in range(n):
        t = topics[rng.integers(len(topics))]
        good = f"Here is how {t} works: first, {t} needs care; then practise {t} daily."
        bad = "Sorry, I can't help with that."
        if rng.random() < 0.5:
            prompts.append(f"Tell me about {t}"), a.append(good), b.append(bad), labels.append("A>B")
        else:
            prompts.append(f"Tell me about {t}"), a.append(bad), b.append(good), labels.append("B>>A")
    return prompts, a, b, labels


def test_learns_a_clear_preference_and_is_antisymmetric():
    p, a, b, y = toy(60)
    m = RewardModel().fit(p, a, b, y)
    tp, ta, tb, ty = toy(40, seed=1)
    gap = m.gap(tp, ta, tb)
    assert np.mean((gap > 0) == np.isin(ty, ["A>B", "A>>B"])) == 1.0
    assert np.allclose(m.gap(tp, tb, ta), -gap)
    assert np.allclose(m.prob_a(tp, ta, tb) + m.prob_a(tp, tb, ta), 1.0)
    scores = m.score(tp, ta)
    assert scores.shape == (40,) and np.allclose(scores - m.score(tp, tb), gap)


def test_ties_and_missing_labels_carry_no_direction():
    p, a, b, y = toy(40)
    base = RewardModel().fit(p, a, b, y)
    noisy = RewardModel().fit(p + ["x", "y"], a + ["aa", "bb"], b + ["cc", "dd"], y + ["A=B", None])
    assert base.n_train_ == noisy.n_train_ == 40
    assert np.allclose(base.coef_, noisy.coef_, atol=1e-3)  # same data; the dual solver stops at its tolerance
    with pytest.raises(ValueError, match="no directional label"):
        RewardModel().fit(["x"], ["a"], ["b"], ["A=B"])
    with pytest.raises(NotFitted):
        RewardModel().score(["x"], ["y"])


def test_strong_labels_weigh_more():
    p, a, b, _ = toy(30)
    strong = ["A>>B"] * 15 + ["B>>A"] * 15
    weak = ["A>B"] * 15 + ["B>A"] * 15
    hi = RewardModel(strong_weight=3.0).fit(p, a, b, strong)
    lo = RewardModel(strong_weight=3.0).fit(p, a, b, weak)
    assert np.linalg.norm(hi.coef_) > np.linalg.norm(lo.coef_)


def test_learns_above_chance_on_real_hh_rlhf(shared_data):
    pairs = load_hh_pairs(shared_data / "hh_rlhf" / "helpful-base" / "test.jsonl.gz").pairs
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pairs))
    train, test = pairs.iloc[order[:800]], pairs.iloc[order[800:1300]]
    flip = rng.random(len(train)) < 0.5  # show the chosen response as B half the time
    a = np.where(flip, train["rejected"], train["chosen"]).tolist()
    b = np.where(flip, train["chosen"], train["rejected"]).tolist()
    labels = np.where(flip, "B>A", "A>B").tolist()
    m = RewardModel().fit(train["prompt"].tolist(), a, b, labels)
    gap = m.gap(test["prompt"].tolist(), test["chosen"].tolist(), test["rejected"].tolist())
    accuracy = float(np.mean(gap > 0))
    # measured 0.61-0.63 at this size; chance is 0.5 and 500 test pairs give a standard error of 0.022
    assert accuracy > 0.56, accuracy


def test_save_and_load_round_trip(tmp_path):
    p, a, b, y = toy(30)
    m = RewardModel(C=0.5, strong_weight=2.0).fit(p, a, b, y)
    path = m.save(tmp_path / "rm.npz")
    back = RewardModel.load(path)
    assert (back.C, back.strong_weight, back.n_train_) == (0.5, 2.0, 30)
    assert np.array_equal(back.score(p, a), m.score(p, a))
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.npz: not a prefpipe reward model"):
        RewardModel.load(tmp_path / "junk.npz")
