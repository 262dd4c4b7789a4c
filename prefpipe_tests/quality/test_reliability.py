"""Annotator reliability and filtering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefpipe.quality import Annotations, QualityInputError, annotator_reliability, filter_annotations, fit_dawid_skene
from prefpipe.quality.reliability import composite_score, leave_one_out_agreement, speed_term
from prefpipe.quality.simulate import simulate_batch
from prefpipe.core.schemas import ANNOTATOR_RELIABILITY


def rows(spec: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(spec, columns=["pair_id", "annotator_id", "label", "duration_s", "is_gold", "gold_label"])
    return df


def test_leave_one_out_ignores_own_vote_and_splits_ties() -> None:
    df = rows(
        [
            ("p1", "a", "A>B", 10, False, None), ("p1", "b", "A>B", 10, False, None), ("p1", "c", "B>A", 10, False, None),
            ("p2", "a", "A=B", 10, False, None), ("p2", "b", "B>A", 10, False, None), ("p2", "c", "A>B", 10, False, None),
            ("p3", "a", "A>B", 10, False, None),
        ]
    )
    ann = Annotations.from_frame(df)
    loo = leave_one_out_agreement(ann)
    # p1: a sees a 1-1 tie {A>B, B>A} holding its label -> 1/2; so does b; c sees A>B win 2-0 -> 0
    # p2: everyone sees a tie of two other labels, none equal to theirs -> 0; p3: nobody else -> NaN
    np.testing.assert_allclose(loo[:6], [0.5, 0.5, 0, 0, 0, 0])
    assert np.isnan(loo[6])
    two_way = Annotations.from_frame(rows([("p1", "a", "A>B", 1, False, None), ("p1", "b", "A>B", 1, False, None), ("p1", "c", "B>A", 1, False, None), ("p1", "d", "B>A", 1, False, None)]))
    np.testing.assert_allclose(leave_one_out_agreement(two_way), [0, 0, 0, 0])  # each sees the other side win 2-1
    clear = Annotations.from_frame(rows([("p1", x, "A>B", 1, False, None) for x in "abc"] + [("p1", "d", "B>A", 1, False, None)]))
    np.testing.assert_allclose(leave_one_out_agreement(clear), [1, 1, 1, 0])  # a unique majority of the others


def test_speed_and_composite_renormalise_missing_terms() -> None:
    np.testing.assert_allclose(speed_term(np.array([0.0, 2.5, 5.0, 60.0])), [0, 0.5, 1, 1])
    terms = np.array([[1.0, 0.5, 1.0], [np.nan, 0.5, 1.0], [np.nan, np.nan, np.nan], [0.8, np.nan, np.nan]])
    np.testing.assert_allclose(composite_score(terms), [0.4 + 0.15 + 0.3, 0.75, np.nan, 0.8])


def test_reliability_columns_gold_flag_and_kept() -> None:
    spec = []
    for i in range(8):  # 8 gold items: a right on all, b wrong on 5 of 8, c never gold-answers
        spec.append((f"g{i}", "a", "A>B", 8.0, True, "A>B"))
        spec.append((f"g{i}", "b", "A>B" if i < 3 else "B>A", 1.0, True, "A>B"))
    for i in range(6):
        spec.append((f"p{i}", "a", "A=B", 8.0, False, None))
        spec.append((f"p{i}", "c", "A=B", None, False, None))
    df = rows(spec)
    rel = annotator_reliability(df).set_index("annotator_id")
    assert list(annotator_reliability(df).columns) == list(ANNOTATOR_RELIABILITY)
    assert rel.loc["a", "gold_answers"] == 8 and rel.loc["a", "gold_accuracy"] == 1.0
    assert rel.loc["b", "gold_accuracy"] == pytest.approx(3 / 8) and rel.loc["b", "gold_flagged"]
    assert not rel.loc["b", "kept"] and rel.loc["b", "speed_penalty"] == pytest.approx(0.2)
    assert rel.loc["c", "gold_answers"] == 0 and np.isnan(rel.loc["c", "gold_accuracy"])
    assert np.isnan(rel.loc["c", "mean_seconds"]) and np.isnan(rel.loc["c", "speed_penalty"])
    assert rel.loc["c", "composite"] == pytest.approx(rel.loc["c", "majority_agreement"])  # the one term it has
    assert rel.loc["a", "kept"] and rel.loc["c", "kept"]
    assert rel["ds_accuracy"].between(0, 1).all()


def test_the_composite_filters_only_when_asked_and_unscored_is_not_kept() -> None:
    df = rows([("p1", "a", "A>B", None, False, None), ("p2", "b", "A>B", None, False, None), ("p2", "c", "A>B", None, False, None)])
    assert annotator_reliability(df)["kept"].all()  # the default keeps everyone gold did not flag
    rel = annotator_reliability(df, threshold=0.6).set_index("annotator_id")
    assert np.isnan(rel.loc["a", "composite"]) and not rel.loc["a", "kept"]
    assert annotator_reliability(df, threshold=0.6, keep_unscored=True).set_index("annotator_id").loc["a", "kept"]


def test_optional_columns_and_reused_fit() -> None:
    df = rows([("p1", "a", "A>B", 3, False, None), ("p1", "b", "A>B", 3, False, None)])
    with pytest.raises(QualityInputError, match="duration_s"):
        annotator_reliability(df.drop(columns="duration_s"))
    rel = annotator_reliability(df.drop(columns=["duration_s", "is_gold", "gold_label"]), duration=None, is_gold=None, gold_label=None)
    assert rel["mean_seconds"].isna().all() and (rel["composite"] == 1.0).all()
    fit = fit_dawid_skene(df)
    assert annotator_reliability(df, ds_fit=fit)["ds_accuracy"].tolist() == fit.accuracy.tolist()


def test_conflicting_gold_is_an_error() -> None:
    df = rows([("p1", "a", "A>B", 3, True, "A>B"), ("p1", "b", "A>B", 3, True, "B>A")])
    with pytest.raises(QualityInputError, match="conflicting gold"):
        annotator_reliability(df)


def test_simulated_batch_keeps_careful_and_drops_random_clickers() -> None:
    batch = simulate_batch(4000, n_annotators=40, seed=2)
    rel = annotator_reliability(batch.annotations)
    kinds = batch.kinds.reindex(rel["annotator_id"]).to_numpy()
    assert rel.loc[kinds == "careful", "kept"].all()
    assert not rel.loc[kinds == "random", "kept"].any()
    assert rel.loc[kinds == "random", "speed_penalty"].max() < 0.6


def test_filter_reports_what_it_dropped() -> None:
    df = rows(
        [
            ("p1", "a", "A>B", 9, False, None), ("p1", "b", "B>A", 9, False, None),
            ("p2", "b", "A>B", 9, False, None), ("p2", "b2", None, 9, False, None),
            ("p3", "a", None, 9, False, None),
        ]
    )
    rel = pd.DataFrame({"annotator_id": ["a", "b", "b2"], "kept": [True, False, False]})
    kept, summary = filter_annotations(df, rel)
    assert kept["annotator_id"].tolist() == ["a", "a"]
    assert summary == {"labels_dropped": 2, "rows_dropped": 3, "items_dropped": 1, "annotators_dropped": 2, "dropped_annotators": ["b", "b2"]}
    with pytest.raises(QualityInputError, match="no row for 1 annotator"):
        filter_annotations(df, rel.iloc[:2])


def test_gold_labels_feed_dawid_skene() -> None:
    from prefpipe.quality import dawid_skene, gold_labels

    df = rows([("p1", "a", "A>B", 3, True, "B>A"), ("p1", "b", "A>B", 3, True, "B>A"), ("p2", "a", "A=B", 3, False, None)])
    gold = gold_labels(df)
    assert gold.to_dict() == {"p1": "B>A"}
    assert dawid_skene(df, gold=gold).set_index("pair_id").loc["p1", "label"] == "B>A"


def test_filter_of_an_empty_batch_drops_nothing() -> None:
    empty = rows([])
    kept, summary = filter_annotations(empty, pd.DataFrame({"annotator_id": ["a"], "kept": [True]}))
    assert kept.empty and summary["labels_dropped"] == 0 and summary["annotators_dropped"] == 0


def test_direction_match_scores_gold_as_the_annotation_app_does() -> None:
    """An annotator who answers A>B where the key says A>>B is right by direction (the app's rule)
    and wrong by exact match; a tie against an A-key is wrong either way."""
    rows = []
    for i in range(6):
        rows.append({"pair_id": f"g{i}", "annotator_id": "careful", "label": "A>B" if i < 5 else "A=B",
                     "is_gold": True, "gold_label": "A>>B", "duration_s": 30.0})
        rows.append({"pair_id": f"g{i}", "annotator_id": "other", "label": "A>>B",
                     "is_gold": True, "gold_label": "A>>B", "duration_s": 30.0})
    df = pd.DataFrame(rows)
    scale = ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
    exact = annotator_reliability(df, categories=scale).set_index("annotator_id")
    direction = annotator_reliability(df, categories=scale, gold_match="direction").set_index("annotator_id")
    assert exact.loc["careful", "gold_accuracy"] == 0.0 and exact.loc["careful", "gold_flagged"]
    assert direction.loc["careful", "gold_accuracy"] == pytest.approx(5 / 6) and not direction.loc["careful", "gold_flagged"]
    assert direction.loc["other", "gold_accuracy"] == 1.0
    with pytest.raises(QualityInputError, match="five-point scale"):
        annotator_reliability(df.assign(label=0, gold_label=0), gold_match="direction")
    with pytest.raises(QualityInputError, match="gold_match"):
        annotator_reliability(df, categories=scale, gold_match="loose")
