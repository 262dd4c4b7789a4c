"""The stale-batch view over frames with mixed versions, and over a real DuckDB warehouse file."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from prefpipe.core.staleness import STALE_BATCHES, label_versions, stale_batch_ids, stale_batches

CURRENT_G, CURRENT_P = "g2", "jp2"


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    """b_old: everything under g1 (AI under jp1, one unparsed verdict, one external label of unknown
    cost); b_mixed: AI labels current, two human labels and one gold answer under g1;
    b_prompt: AI labels under the current guideline but the old judge prompt; b_new: all current."""
    ai = pd.DataFrame({
        "batch_id": ["b_old"] * 4 + ["b_mixed"] * 2 + ["b_prompt"] * 2 + ["b_new"] * 2,
        "pair_id": ["1", "2", "3", "4", "1", "2", "1", "2", "1", "2"],
        "label": ["A>B", None, "B>A", "A=B", "A>B", "B>A", "A>B", "A>B", "A>B", "B>A"],
        "guideline_version": ["g1", "g1", "g1", None, "g2", "g2", "g2", "g2", "g2", "g2"],
        "judge_prompt_version": ["jp1", "jp1", "jp1", "external", "jp2", "jp2", "jp1", "jp1", "jp2", "jp2"],
        "cost_usd": [0.01, 0.01, 0.02, np.nan, 0.01, 0.01, 0.03, 0.03, 0.01, 0.01],
    })
    human = pd.DataFrame({
        "batch_id": ["b_old"] * 2 + ["b_mixed"] * 4 + ["b_new"],
        "pair_id": ["1", "2", "1", "1", "2", "2", "1"],
        "label": ["A>B", "B>A", "A>B", "A>B", None, "B>A", "A>B"],
        "guideline_version": ["g1", "g1", "g1", "g2", "g1", "g1", "g2"],
        "is_gold": [False, False, True, False, False, False, False],
    })
    preference = pd.DataFrame({
        "batch_id": ["b_old", "b_mixed", "b_mixed", "b_new"],
        "pair_id": ["1", "1", "2", "1"],
        "guideline_version": ["g1", "g1+g2", "g1", "g2"],
    })
    return {"ai_labels": ai, "human_annotations": human, "preference_dataset": preference}


def _row(view: pd.DataFrame, batch: str, stage: str) -> pd.Series:
    hit = view[(view["batch_id"] == batch) & (view["stage"] == stage)]
    assert len(hit) == 1, f"expected one row for {batch}/{stage}, got {len(hit)}"
    return hit.iloc[0]


def test_mixed_versions_give_the_right_stages_counts_and_costs(tables):
    view = stale_batches(tables, CURRENT_G, CURRENT_P, {"ai_labels": 0.05, "human_annotations": 0.40})
    assert list(view.columns) == list(STALE_BATCHES)
    assert set(zip(view["batch_id"], view["stage"])) == {
        ("b_old", "ai_labels"), ("b_old", "human_annotations"), ("b_old", "preference_dataset"),
        ("b_mixed", "human_annotations"), ("b_mixed", "preference_dataset"), ("b_prompt", "ai_labels"),
    }
    old_ai = _row(view, "b_old", "ai_labels")
    assert (old_ai["n_labels"], old_ai["n_stale"], old_ai["n_stale_guideline"], old_ai["n_stale_judge_prompt"]) == (4, 4, 4, 4)
    assert old_ai["stale_guideline_versions"] == "(unknown), g1"
    assert old_ai["stale_judge_prompt_versions"] == "external, jp1"
    # what the three priced labels cost last time + the external one at the ledger's unit cost
    assert old_ai["estimated_cost_usd"] == pytest.approx(0.04 + 0.05)
    assert old_ai["action"] == "relabel"
    mixed_human = _row(view, "b_mixed", "human_annotations")
    # the skipped item is not a label; one of the two stale labels is a gold answer
    assert (mixed_human["n_labels"], mixed_human["n_stale"], mixed_human["n_gold_stale"]) == (3, 2, 1)
    assert mixed_human["estimated_cost_usd"] == pytest.approx(0.80)
    assert mixed_human["action"].startswith("kept")
    prompt = _row(view, "b_prompt", "ai_labels")
    assert (prompt["n_stale_guideline"], prompt["n_stale_judge_prompt"]) == (0, 2)
    assert prompt["estimated_cost_usd"] == pytest.approx(0.06)
    assert _row(view, "b_mixed", "preference_dataset")["n_stale"] == 2  # "g1+g2" is not current either
    assert _row(view, "b_old", "preference_dataset")["estimated_cost_usd"] == 0.0
    assert stale_batch_ids(view) == ["b_mixed", "b_old", "b_prompt"]


def test_without_a_ledger_ai_cost_uses_the_mean_and_human_cost_stays_unknown(tables):
    view = stale_batches(tables, CURRENT_G, CURRENT_P)
    mean_ai_cost = tables["ai_labels"]["cost_usd"].mean()
    assert _row(view, "b_old", "ai_labels")["estimated_cost_usd"] == pytest.approx(0.04 + mean_ai_cost)
    assert pd.isna(_row(view, "b_old", "human_annotations")["estimated_cost_usd"])


def test_cost_report_rows_serve_as_the_ledger(tables):
    ledger = pd.DataFrame({"batch_id": ["b_old", "b_new"], "section": ["ledger", "ledger"],
                           "item": ["human_label", "human_label"], "unit_usd": [0.3, 0.5]})
    view = stale_batches(tables, CURRENT_G, CURRENT_P, ledger)
    assert _row(view, "b_mixed", "human_annotations")["estimated_cost_usd"] == pytest.approx(2 * 0.4)


def test_include_current_and_unchecked_prompt(tables):
    everything = stale_batches(tables, CURRENT_G, CURRENT_P, include_current=True)
    assert _row(everything, "b_new", "ai_labels")["n_stale"] == 0
    guideline_only = stale_batches(tables, CURRENT_G, None)
    assert ("b_prompt", "ai_labels") not in set(zip(guideline_only["batch_id"], guideline_only["stage"]))


def test_after_a_backfill_nothing_is_stale(tables):
    current = {name: frame.assign(guideline_version=CURRENT_G) for name, frame in tables.items()}
    current["ai_labels"]["judge_prompt_version"] = CURRENT_P
    assert stale_batches(current, CURRENT_G, CURRENT_P).empty


def test_the_warehouse_connection_gives_the_same_view(tables, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, frame in tables.items():
            con.register("rows", frame)
            con.execute(f'CREATE TABLE main."{name}" AS SELECT * FROM rows')
            con.unregister("rows")
    with duckdb.connect(str(path), read_only=True) as con:
        from_db = stale_batches(con, CURRENT_G, CURRENT_P, {"human_annotations": 0.4})
        versions = label_versions(con)
    from_frames = stale_batches(tables, CURRENT_G, CURRENT_P, {"human_annotations": 0.4})
    pd.testing.assert_frame_equal(from_db, from_frames)
    old = versions[(versions["batch_id"] == "b_old") & (versions["stage"] == "ai_labels")]
    assert old["n_labels"].sum() == 4 and set(old["guideline_version"].dropna()) == {"g1"}


def test_a_frame_without_batch_id_is_named():
    with pytest.raises(KeyError, match="ai_labels: the frame needs a batch_id column"):
        stale_batches({"ai_labels": pd.DataFrame({"guideline_version": ["g1"]})}, "g2", None)
