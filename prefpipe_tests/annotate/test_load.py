"""Load check: 50 concurrent annotators x 100 labels against a live server on loopback.

Every label acknowledged is stored exactly once, none is lost, each is mapped back to the pair's
order correctly, no item gets more answers than wanted and no honest annotator is flagged.
Latency is printed, not asserted (machines are noisy); `python -m prefpipe.bench annotate-load`
runs the same load beside the stack's floor.
"""

from __future__ import annotations

import pytest

from prefpipe.bench.annotate_load import run_load


@pytest.mark.slow
def test_fifty_annotators_a_hundred_labels_each_nothing_lost(tmp_path):
    result = run_load(tmp_path / "data", annotators=50, labels_each=100, per_item=3, measure_floor=False)
    print("\n" + result.report())
    assert result.problems == []
    assert sum(len(v) for v in result.latencies_ms.values()) == 2 * 50 * 100
