"""Bias statistics from per-order verdicts."""

from __future__ import annotations

import pandas as pd

from prefpipe.judge.bias import BIAS_COLUMNS, bias_stats


def test_flip_first_slot_and_length_rates() -> None:
    verdicts = pd.DataFrame(
        [
            # p0: judge always prefers the first slot -> a flip
            ("p0", "j", "ab", "ok", "A>B", "A>B", 10, 50),
            ("p0", "j", "ba", "ok", "A>B", "B>A", 10, 50),
            # p1: consistent preference for the longer B
            ("p1", "j", "ab", "ok", "B>>A", "B>>A", 10, 50),
            ("p1", "j", "ba", "ok", "A>>B", "B>>A", 10, 50),
            # p2: a tie and an unparsed order
            ("p2", "j", "ab", "ok", "A=B", "A=B", 20, 20),
            ("p2", "j", "ba", "unparsed", None, None, 20, 20),
        ],
        columns=["pair_id", "judge", "order", "status", "raw_label", "label", "len_a", "len_b"],
    )
    labels = pd.DataFrame({"pair_id": ["p0", "p1", "p2"], "judge": "j", "status": ["inconsistent", "ok", "unparsed"]})
    stats = bias_stats(verdicts, labels)
    assert list(stats.columns) == list(BIAS_COLUMNS)
    s = stats.iloc[0]
    assert (s["pairs"], s["ok"], s["inconsistent"], s["unparsed"], s["orders_parsed"]) == (3, 1, 1, 1, 5)
    assert s["position_flip_rate"] == 0.5  # p0 flipped, p1 did not, p2 has one order only
    assert s["first_slot_rate"] == 0.75  # of 4 decided verdicts, 3 chose the slot shown first
    assert s["longer_rate"] == 0.75  # 3 of 4 decided verdicts chose the longer response
    assert s["tie_rate"] == 0.2
