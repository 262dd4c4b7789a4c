"""The team backfill benchmark: its synthetic batches are valid imported pairs, its checks refuse a
wrong count, and at a tiny size (2 batches x 50 pairs, 2 runs at once) it starts its own PostgreSQL,
backfills both warehouses, checks every run and every batch's rows, writes both wall times and their
ratio as JSON, and leaves nothing behind. No timing is asserted."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from prefpipe.bench import team_backfill
from prefpipe.core.batch_inputs import validate_batch_inputs
from prefpipe_tests.services import require_postgres

LEFTOVERS = ("prefpipe-team-backfill-*", "prefpipe-pg-*")


def test_a_synthetic_batch_is_valid_imported_pairs_and_the_same_for_a_seed(tmp_path):
    team_backfill.write_batch(tmp_path / "a", "a", 300, seed=7)
    team_backfill.write_batch(tmp_path / "b", "a", 300, seed=7)
    report = validate_batch_inputs(tmp_path / "a")
    assert (report.pairs, report.ai_labels, report.annotations) == (300, 300, 300 * team_backfill.LABELS_PER_PAIR)
    assert report.config.closed  # the nightly schedule must not start runs of its own during the benchmark
    for name in ("prompts.jsonl", "ai_labels.jsonl", "annotations.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_wrong_count_is_a_problem_not_a_figure():
    pairs = 10
    rows = {t: {"b1": pairs * k, "b2": pairs * k} for t, k in team_backfill.EXACT.items()}
    counts = pd.DataFrame(rows).T
    assert team_backfill.check_counts(counts, ["b1", "b2"], pairs) == []
    counts.loc["final_labels", "b2"] = pairs - 1
    assert team_backfill.check_counts(counts, ["b1", "b2"], pairs) == [f"final_labels: expected {pairs} rows a batch, got {{'b2': {pairs - 1}}}"]
    assert team_backfill.check_counts(counts.drop(index="routing"), ["b1", "b2"], pairs)[0].startswith("routing:")


@pytest.mark.team
@pytest.mark.slow
def test_a_tiny_backfill_on_both_warehouses(tmp_path):
    require_postgres("dagster_postgres")
    tmp = Path(tempfile.gettempdir())
    before = {p for pattern in LEFTOVERS for p in tmp.glob(pattern)}
    out = tmp_path / "figures.json"
    assert team_backfill.main(["--batches", "2", "--pairs", "50", "--concurrent", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    batches = ["bench00", "bench01"]
    for key, at_once in (("duckdb_file", 1), ("lakehouse", 2)):
        side = result[key]
        assert side["max_concurrent_runs"] == at_once
        assert sorted((r["batch"], r["status"]) for r in side["runs"]) == [(b, "SUCCESS") for b in batches]
        for table, per_pair in team_backfill.EXACT.items():
            assert side["rows"][table] == {b: 50 * per_pair for b in batches}, (key, table)
        assert side["wall_s"] > 0 and 0 <= side["picked_up_s"] < side["wall_s"]
    assert result["lakehouse"]["rows"] == result["duckdb_file"]["rows"]
    assert result["ratio"] == pytest.approx(result["duckdb_file"]["wall_s"] / result["lakehouse"]["wall_s"])
    assert result["executor"] == "in_process" and result["machine"]["cores"] >= 1 and result["machine"]["duckdb"]
    assert result["machine"]["postgresql"] and result["machine"]["ram_gib"] > 0
    assert {p for pattern in LEFTOVERS for p in tmp.glob(pattern)} <= before  # the server and the work folder are gone
