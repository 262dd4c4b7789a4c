"""Majority and weighted votes: the tie rule, weights, crowd-kit equality and the published
majority-vote accuracies on the real crowd sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefpipe.quality import QualityInputError, label_counts, majority_vote, weighted_vote
from prefpipe_tests.quality._data import crowd_annotations, majority_expected_accuracy


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label"])


def test_majority_vote_columns_confidence_and_order() -> None:
    df = frame([("p2", "a", "A>B"), ("p2", "b", "A>B"), ("p2", "c", "B>A"), ("p1", "a", "A=B")])
    out = majority_vote(df)
    assert list(out.columns) == ["pair_id", "label", "confidence", "n_labels"]
    assert list(out["pair_id"]) == ["p2", "p1"]  # first appearance
    assert out.loc[0, "label"] == "A>B" and out.loc[0, "confidence"] == pytest.approx(2 / 3) and out.loc[0, "n_labels"] == 3


def test_batch_tie_rule_gives_the_batch_favourite_then_category_order() -> None:
    df = frame(
        [
            ("p1", "a", "B>A"), ("p1", "b", "A>B"),  # tie between A>B and B>A
            ("p2", "a", "B>A"), ("p2", "b", "B>A"),  # B>A is the batch favourite (3 of 6)
            ("p3", "a", "A=B"), ("p3", "b", "A>B"),
        ]
    )
    out = majority_vote(df, ties="batch").set_index("pair_id")
    assert out.loc["p1", "label"] == "B>A" and out.loc["p1", "confidence"] == 0.5
    assert out.loc["p3", "label"] == "A>B"  # A>B (2 uses) beats A=B (1 use)
    even = frame([("p1", "a", "B>A"), ("p1", "b", "A>B")])
    assert majority_vote(even, ties="batch").loc[0, "label"] == "A>B"  # equal use: first in scale order


def test_weighted_vote_follows_weights_and_refuses_gaps() -> None:
    df = frame([("p1", "a", "A>B"), ("p1", "b", "B>A"), ("p1", "c", "B>A"), ("p2", "c", "A=B")])
    out = weighted_vote(df, {"a": 0.9, "b": 0.2, "c": 0.3}).set_index("pair_id")
    assert out.loc["p1", "label"] == "A>B" and out.loc["p1", "confidence"] == pytest.approx(0.9 / 1.4)
    zero = weighted_vote(df, pd.Series({"a": 1.0, "b": 1.0, "c": 0.0})).set_index("pair_id")
    assert zero.loc["p2", "label"] is None and np.isnan(zero.loc["p2", "confidence"]) and zero.loc["p2", "n_labels"] == 1
    with pytest.raises(QualityInputError, match="have no weight"):
        weighted_vote(df, {"a": 1.0, "b": 1.0})
    with pytest.raises(QualityInputError, match="finite and >= 0"):
        weighted_vote(df, {"a": 1.0, "b": -1.0, "c": 1.0})


def test_label_counts_weighted() -> None:
    df = frame([("p1", "a", 1), ("p1", "b", 0), ("p1", "c", 1)])
    counts = label_counts(df, {"a": 2.0, "b": 1.0, "c": 0.5})
    assert counts.loc["p1", 1] == 2.5 and counts.loc["p1", 0] == 1.0


@pytest.mark.parametrize("name", ["D_Product", "RTE"])
def test_majority_equals_crowdkit_where_there_is_no_tie(shared_data, name: str) -> None:
    from crowdkit.aggregation import MajorityVote

    ann, _ = crowd_annotations(shared_data, name)
    ours = majority_vote(ann).set_index("task")
    data = pd.DataFrame({"task": ann.items[ann.item], "worker": ann.annotators[ann.annotator], "label": np.asarray(ann.categories)[ann.label]})
    theirs = MajorityVote().fit_predict(data)
    untied = ours["confidence"] > 0.5
    assert (ours.loc[untied, "label"].to_numpy() == theirs.loc[ours.index[untied]].to_numpy()).all()


@pytest.mark.parametrize(("name", "published"), [("D_Product", 0.897), ("S_Rel", 0.54), ("RTE", 0.897)])
def test_majority_vote_reproduces_published_accuracy(shared_data, name: str, published: float) -> None:
    """Zheng et al. 2017 (D_Product 0.8966, S_Rel 0.5419) and Snow et al. 2008 (RTE 0.897);
    ties count as the expected accuracy of a random tie-break."""
    ann, gold = crowd_annotations(shared_data, name)
    digits = len(str(published).split(".")[1])
    assert round(majority_expected_accuracy(ann, gold), digits) == published
