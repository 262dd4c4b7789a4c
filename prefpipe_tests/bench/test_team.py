"""`python -m prefpipe.bench team` at a tiny size: the annotation loads on SQLite (one and two apps)
and on PostgreSQL (two apps) all complete with nothing lost or duplicated, and the figures are
written; the backfill half has its own test (test_team_backfill.py)."""

from __future__ import annotations

import json

import pytest

from prefpipe.bench import team
from prefpipe_tests.services import require_postgres


@pytest.mark.team
@pytest.mark.slow
def test_the_annotation_loads_on_both_stores(tmp_path):
    require_postgres()
    out = tmp_path / "figures.json"
    assert team.main(["--skip-backfill", "--annotators", "4", "--labels", "6", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    loads = {(load["store"], load["replicas"]): load for load in figures["annotation_load"]}
    assert set(loads) == {("sqlite", 1), ("sqlite", 2), ("postgresql", 2)}
    for load in loads.values():
        assert load["problems"] == [] and load["calls"] == 2 * 4 * 6
        assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"]
    assert figures["machine"]["cores"] >= 1
