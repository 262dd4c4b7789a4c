"""`python -m prefpipe.bench labels` on the real crowd sets: the figures issue 16 promises."""

from __future__ import annotations

import pytest

from prefpipe.bench import labels
from prefpipe.bench.crowd_sets import CROWD_SETS


@pytest.mark.parametrize("name", CROWD_SETS)
def test_the_default_path_is_at_least_dawid_skene_and_labels_every_gold_item(shared_data, name: str) -> None:
    row = labels.score_set(shared_data, name)
    assert row["default (final_labels)"] >= row["dawid-skene"] - 0.005
    assert row["default (final_labels)"] > row["majority (expected, README)"]
    assert row["default: gold items unlabelled"] == 0
    assert row["majority (coin ties)"] == pytest.approx(row["majority (expected, README)"], abs=0.01)


def test_the_benchmark_prints_every_set(shared_data, capsys) -> None:
    assert labels.main(["--data", str(shared_data), "--sets", "RTE"]) == 0
    out = capsys.readouterr().out
    assert "| default (final_labels) |" in out and "| RTE |" in out
    with pytest.raises(SystemExit):
        labels.main(["--data", str(shared_data / "nowhere")])
