"""Encoding long-format annotations: category order, missing labels and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefpipe.core.labels import SCALE
from prefpipe.quality import (
    Annotations,
    DuplicateLabelError,
    EmptyAnnotationsError,
    QualityInputError,
    UnknownLabelError,
    krippendorff_alpha,
    majority_vote,
)


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label"])


def test_scale_labels_take_the_whole_scale_in_order() -> None:
    ann = Annotations.from_frame(frame([("p1", "a", "B>A"), ("p1", "b", "A>B")]))
    assert ann.categories == SCALE
    assert list(ann.label) == [3, 1]


def test_other_labels_are_sorted() -> None:
    assert Annotations.from_frame(frame([("p1", "a", 3), ("p1", "b", 0), ("p2", "a", 1.0)])).categories == (0, 1, 3)
    assert Annotations.from_frame(frame([("p1", "a", "yes"), ("p1", "b", "no")])).categories == ("no", "yes")


def test_mixed_types_need_categories() -> None:
    with pytest.raises(QualityInputError, match="no common order"):
        Annotations.from_frame(frame([("p1", "a", "yes"), ("p1", "b", 1)]))


def test_unknown_label_names_value_and_row() -> None:
    with pytest.raises(UnknownLabelError, match=r"'maybe'.*first at row 1"):
        Annotations.from_frame(frame([("p1", "a", "yes"), ("p1", "b", "maybe")]), categories=["no", "yes"])


def test_declared_categories_keep_their_order_and_unused_points() -> None:
    ann = Annotations.from_frame(frame([("p1", "a", "lo"), ("p1", "b", "hi")]), categories=["lo", "mid", "hi"])
    assert ann.categories == ("lo", "mid", "hi") and list(ann.label) == [0, 2]


def test_missing_labels_are_dropped_but_their_items_kept() -> None:
    ann = Annotations.from_frame(frame([("p1", "a", "A>B"), ("p2", "a", None), ("p2", "b", np.nan)]))
    assert ann.n_labels == 1 and ann.n_missing == 2
    assert list(ann.items) == ["p1", "p2"]
    votes = majority_vote(ann)
    assert votes.loc[1, "label"] is None and votes.loc[1, "n_labels"] == 0 and np.isnan(votes.loc[1, "confidence"])


def test_duplicate_item_annotator_is_an_error_naming_both() -> None:
    df = frame([("p1", "a", "A>B"), ("p2", "a", "A>B"), ("p1", "a", "B>A")])
    with pytest.raises(DuplicateLabelError, match=r"annotator_id 'a' labelled pair_id 'p1' more than once"):
        Annotations.from_frame(df)
    assert list(Annotations.from_frame(df, on_duplicate="first").label) == [1, 1]
    assert list(Annotations.from_frame(df, on_duplicate="last").label) == [1, 3]
    kept = Annotations.from_frame(df, on_duplicate="keep")
    assert kept.n_labels == 3 and kept.has_duplicates
    with pytest.raises(DuplicateLabelError, match="agreement needs at most one label"):
        krippendorff_alpha(kept)


def test_duplicates_found_when_rows_are_not_grouped_by_item() -> None:
    rows = [(f"p{i}", f"a{j}", "A>B") for i in range(200) for j in range(3)]
    rows.append(("p17", "a1", "B>A"))
    df = frame(rows).sample(frac=1.0, random_state=1)
    with pytest.raises(DuplicateLabelError):
        Annotations.from_frame(df)


def test_empty_and_all_missing() -> None:
    with pytest.raises(EmptyAnnotationsError, match="empty"):
        Annotations.from_frame(frame([]))
    with pytest.raises(EmptyAnnotationsError, match="all missing"):
        Annotations.from_frame(frame([("p1", "a", None)]))


def test_missing_ids_and_columns() -> None:
    with pytest.raises(QualityInputError, match="annotator_id: 1 row"):
        Annotations.from_frame(frame([("p1", None, "A>B")]))
    with pytest.raises(QualityInputError, match="no column"):
        Annotations.from_frame(frame([("p1", "a", "A>B")]), item="task")


def test_custom_column_names_flow_to_the_output() -> None:
    df = pd.DataFrame({"task": ["t1", "t1"], "worker": ["w1", "w2"], "answer": [1, 1]})
    out = majority_vote(df, item="task", annotator="worker", label="answer")
    assert list(out.columns) == ["task", "label", "confidence", "n_labels"]


def test_unknown_on_duplicate_is_refused_even_without_duplicates() -> None:
    with pytest.raises(ValueError, match="on_duplicate must be"):
        Annotations.from_frame(frame([("p1", "a", "A>B"), ("p1", "b", "B>A")]), on_duplicate="frist")  # type: ignore[arg-type]
