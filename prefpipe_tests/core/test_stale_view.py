from __future__ import annotations

import duckdb

from prefpipe.core.ingest import EXTERNAL_PROMPT_VERSION
from prefpipe.core.stale_view import own_labels, read_warehouse, warehouse_batches


def _warehouse(path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE ai_labels (batch_id VARCHAR, pair_id VARCHAR, guideline_version VARCHAR, judge_prompt_version VARCHAR, cost_usd DOUBLE)")
        con.execute("INSERT INTO ai_labels VALUES ('own', 'a', 'g1', 'judge_v1@x', 0.1), ('own', 'b', 'g1', NULL, NULL),"
                    f" ('own', 'c', 'g1', '{EXTERNAL_PROMPT_VERSION}', NULL), ('imported', 'd', 'g0', '{EXTERNAL_PROMPT_VERSION}', NULL)")
        con.execute("CREATE TABLE human_annotations (batch_id VARCHAR, label VARCHAR, is_gold BOOLEAN, source VARCHAR, guideline_version VARCHAR)")
        con.execute("INSERT INTO human_annotations VALUES ('own', 'A>B', false, 'app', 'g1'), ('own', 'B>A', true, NULL, 'g1'),"
                    " ('people', 'A>B', false, 'import:a.jsonl', 'g0')")
        con.execute("CREATE TABLE final_labels (batch_id VARCHAR, pair_id VARCHAR)")
        con.execute("INSERT INTO final_labels VALUES ('own', 'a'), ('own', 'b'), ('labels_only', 'x')")


def test_the_warehouse_gives_only_the_rows_a_rerun_can_redo_and_every_batch(tmp_path):
    """Imported verdicts and labels never make a batch stale, so they are left in the warehouse
    (a million imported rows used to be read to be dropped); their batches are still listed."""
    db = tmp_path / "w.duckdb"
    _warehouse(db)
    tables = read_warehouse(db)
    assert sorted(tables["ai_labels"]["judge_prompt_version"].fillna("-")) == ["-", "judge_v1@x"]
    assert tables["human_annotations"]["source"].fillna("-").tolist() == ["app", "-"]
    assert {k: len(v) for k, v in own_labels(tables).items()} == {"ai_labels": 2, "human_annotations": 2}
    assert warehouse_batches(tables) == ["imported", "labels_only", "own", "people"]
    assert tables["final_label_counts"] == {"own": 2, "labels_only": 1}
    one = read_warehouse(db, batch_id="imported")
    assert one["ai_labels"].empty and one["label_batches"] == ["imported"] and one["final_label_counts"] == {}
    assert read_warehouse(tmp_path / "none.duckdb") == {"final_label_counts": {}, "label_batches": []}


def test_a_batch_no_run_completed_is_never_completed_not_stale():
    """Its last_run row says so whatever label rows a failed run left, and no backfill reruns it."""
    import pandas as pd

    from prefpipe.core.stale_view import NEVER_COMPLETED, RUN_STAGE, CurrentVersions, batches_to_rerun, never_completed_batches, stale_view

    ai = pd.DataFrame({"batch_id": ["failed", "old"], "guideline_version": ["g0", "g0"], "judge_prompt_version": "judge_v1@x", "cost_usd": 0.1})
    view = stale_view({"ai_labels": ai}, {"old": "g0", "failed": None}, CurrentVersions("g1", {"judge_v1": "judge_v1@x"}),
                      never_completed={"failed": "its last run (r1) failed at ai_labels"})
    assert batches_to_rerun(view) == ["old"]
    (row,) = view[view["batch_id"] == "failed"].itertuples()
    assert row.stage == RUN_STAGE and row.action == f"{NEVER_COMPLETED}: its last run (r1) failed at ai_labels" and row.n_stale == 0
    assert never_completed_batches(view) == {"failed": row.action}
