"""Raw and directional pairwise agreement."""

from __future__ import annotations

import pandas as pd
import pytest

from prefpipe.quality import AgreementUndefinedError, QualityInputError, pairwise_agreement, pairwise_agreement_estimate


def frame(rows: list[tuple[str, str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label"])


def test_raw_agreement_is_the_mean_share_of_agreeing_pairs_per_item() -> None:
    df = frame(
        [
            ("p1", "a", "A>B"), ("p1", "b", "A>B"), ("p1", "c", "A>>B"),  # 1 of 3 pairs agree
            ("p2", "a", "B>A"), ("p2", "b", "B>A"),  # 1 of 1
            ("p3", "a", "A=B"),  # single label: left out
        ]
    )
    assert pairwise_agreement(df) == pytest.approx((1 / 3 + 1) / 2)
    assert pairwise_agreement(df, directional=True) == pytest.approx(1.0)


def test_directional_keeps_ties_apart() -> None:
    df = frame([("p1", "a", "A>B"), ("p1", "b", "A=B"), ("p2", "a", "B>>A"), ("p2", "b", "B>A")])
    assert pairwise_agreement(df) == 0.0
    assert pairwise_agreement(df, directional=True) == pytest.approx(0.5)


def test_missing_labels_are_not_disagreement() -> None:
    df = frame([("p1", "a", "A>B"), ("p1", "b", "A>B"), ("p1", "c", None)])
    assert pairwise_agreement(df) == 1.0


def test_directional_needs_the_scale() -> None:
    df = frame([("p1", "a", 1), ("p1", "b", 0)])
    with pytest.raises(QualityInputError, match="five-point scale"):
        pairwise_agreement(df, directional=True)


def test_undefined_without_an_item_holding_two_labels() -> None:
    with pytest.raises(AgreementUndefinedError):
        pairwise_agreement(frame([("p1", "a", "A>B"), ("p2", "b", "A>B")]))


def test_estimate_has_interval_and_item_count() -> None:
    rows = [(f"p{i}", ann, "A>B" if (i + j) % 3 else "B>A") for i in range(60) for j, ann in enumerate("abc")]
    est = pairwise_agreement_estimate(frame(rows), n_boot=200, seed=0)
    assert est.n_items == 60 and est.ci_low <= est.value <= est.ci_high
