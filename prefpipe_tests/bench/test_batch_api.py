"""The Batch API benchmark on a small batch: both runs go through Dagster for real, every pair gets
a label and every request a ledger row, and the server's files are gone afterwards."""

from __future__ import annotations

from pathlib import Path

from prefpipe.bench import batch_api


def test_a_small_batch_is_prepared_and_ingested(tmp_path: Path) -> None:
    figures = batch_api.measure(300, tmp_path / "run")
    assert figures["requests"] == 600 and figures["answers_ingested"] == 600 and figures["still_open_jobs"] == 0
    assert figures["labels"] == 300 and figures["judge_calls"] == 600 and figures["files"] == 1
    assert figures["prepare_wall_s"] > 0 and figures["ingest_peak_rss_bytes"] > 0
    assert not (tmp_path / "run" / "server-files").exists()  # the uploads and answers are removed with the server
    table = batch_api.report([figures])
    assert "| 300 | 600 | 1 |" in table
