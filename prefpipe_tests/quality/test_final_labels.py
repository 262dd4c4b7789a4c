"""prefpipe.quality.final_labels, the pipeline's default path: at least Dawid-Skene on every
crowd set, covering every gold item; roles, gold, flagged annotators and duplicates."""

from __future__ import annotations

import pandas as pd
import pytest

from prefpipe.quality import DuplicateLabelError, QualityInputError, dawid_skene, filter_annotations, majority_vote
from prefpipe.quality import annotator_reliability, final_labels
from prefpipe_tests.quality._data import CROWD_SETS, accuracy, crowd_annotations, load_crowd


@pytest.mark.parametrize("name", CROWD_SETS)
def test_default_path_matches_dawid_skene_and_covers_every_gold_item(shared_data, name: str) -> None:
    labels, gold = load_crowd(shared_data, name)
    out = final_labels(labels, item="task", annotator="worker", label="label", on_duplicate="keep").set_index("task")
    ds = dawid_skene(crowd_annotations(shared_data, name)[0]).set_index("task")
    assert accuracy(out["label"], gold) >= accuracy(ds["label"], gold) - 0.005
    assert out["label"].reindex(gold.index).notna().all()
    assert (out["method"] == "dawid_skene").all() and (out["source"] == "people").all()


def test_the_source_designs_filter_leaves_s_rel_mostly_unlabelled(shared_data) -> None:
    """Why the composite is no longer a filter: at 0.6 it drops most of S_Rel's workers."""
    labels, _ = load_crowd(shared_data, "S_Rel")
    labels = labels.drop_duplicates(["task", "worker"])
    rel = annotator_reliability(labels, item="task", annotator="worker", duration=None, is_gold=None, gold_label=None, threshold=0.6)
    kept, summary = filter_annotations(labels, rel, item="task", annotator="worker")
    assert summary["annotators_dropped"] > 0.8 * len(rel)
    default = annotator_reliability(labels, item="task", annotator="worker", duration=None, is_gold=None, gold_label=None)
    assert default["kept"].all()  # no gold here, so nobody is flagged and nobody dropped


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label", "role"])


def test_experts_decide_gold_is_held_and_flagged_workers_leave_nothing_invented() -> None:
    df = frame([
        ("p1", "a", "A>B", "annotator"), ("p1", "b", "A>B", "annotator"), ("p1", "e", "B>A", "expert"),
        ("p2", "a", "A>B", "annotator"), ("p2", "j:gpt:ab", "B>A", "judge"),
        ("p3", "a", "A=B", "annotator"), ("p3", "b", "A=B", "annotator"),
        ("p4", "spam", "A>>B", "annotator"),
        ("p5", "a", None, "annotator"),
    ])
    out = final_labels(df, role="role", gold={"p3": "B>A"}, flagged={"spam"}).set_index("pair_id")
    assert list(out.index) == ["p1", "p2", "p3", "p4", "p5"]
    assert out.loc["p1", "label"] == "B>A" and out.loc["p1", "source"] == "expert" and out.loc["p1", "n_labels"] == 1
    assert out.loc["p2", "source"] == "people+judges" and out.loc["p2", "n_labels"] == 2
    assert out.loc["p3", "label"] == "B>A" and out.loc["p3", "source"] == "gold" and out.loc["p3", "confidence"] == 1.0
    assert out.loc["p4", "label"] is None and out.loc["p4", "source"] == "flagged" and out.loc["p4", "n_labels"] == 0
    assert out.loc["p5", "source"] == "unlabelled"


def test_majority_method_and_errors() -> None:
    df = frame([("p1", "a", "A>B", "annotator"), ("p1", "b", "A>B", "annotator"), ("p1", "c", "B>A", "annotator")])
    out = final_labels(df, method="majority")
    assert out.loc[0, "label"] == "A>B" and out.loc[0, "confidence"] == pytest.approx(2 / 3) and out.loc[0, "method"] == "majority"
    assert out.loc[0, "label"] == majority_vote(df).loc[0, "label"]
    with pytest.raises(QualityInputError, match=r"role: row 0 has role 'boss'"):
        final_labels(df.assign(role="boss"), role="role")
    with pytest.raises(DuplicateLabelError, match="more than once"):
        final_labels(pd.concat([df, df.iloc[:1]]))
    assert len(final_labels(pd.concat([df, df.iloc[:1]]), on_duplicate="keep")) == 1
    with pytest.raises(ValueError, match="method must be"):
        final_labels(df, method="best")
    assert final_labels(df.iloc[:0]).empty
