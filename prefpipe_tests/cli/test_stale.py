"""The stale view: which rows make a batch stale (frames), then `prefpipe stale` and
`prefpipe backfill --stale --dry-run` after a real guideline edit in a temporary data folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import dagster as dg

from prefpipe.cli import main
from prefpipe.core.stale_view import CURRENT_PROMPT, NO_RUN_RECORDED, RUN_STAGE, CurrentVersions, batches_to_rerun, prompt_is_current, stale_view
from prefpipe.core.staleness import STALE_BATCHES
from prefpipe_tests.defs.conftest import make_batch, project_data  # noqa: F401 (project_data: fixture)

NOW = CurrentVersions("g2", {"judge_v1": "judge_v1@new"})


def ai_rows(batch: str, versions: list[tuple[str | None, str | None]], cost: float = 0.01) -> pd.DataFrame:
    return pd.DataFrame({"batch_id": batch, "guideline_version": [g for g, _ in versions],
                         "judge_prompt_version": [p for _, p in versions], "cost_usd": cost})


def human_rows(batch: str, rows: list[tuple[str, str, bool]]) -> pd.DataFrame:
    return pd.DataFrame({"batch_id": batch, "label": "A>B", "source": [s for s, _, _ in rows],
                         "guideline_version": [g for _, g, _ in rows], "is_gold": [gold for _, _, gold in rows]})


def row(view: pd.DataFrame, batch: str, stage: str) -> pd.Series:
    hit = view[(view["batch_id"] == batch) & (view["stage"] == stage)]
    assert len(hit) == 1, view
    return hit.iloc[0]


def test_prompt_versions_are_compared_with_their_own_template():
    versions = pd.Series(["judge_v1@new", "judge_v1@old", "my_template@abc", None], dtype="string")
    assert prompt_is_current(versions, NOW.judge_prompts).tolist() == [True, False, True, False]


def test_own_labels_under_old_versions_are_stale_and_imported_ones_never():
    tables = {
        "ai_labels": pd.concat([
            ai_rows("own_old", [("g1", "judge_v1@new"), ("g2", "judge_v1@new")]),
            ai_rows("prompt_old", [("g2", "judge_v1@old"), ("g2", "judge_v1@old")], cost=0.02),
            ai_rows("imported", [("vendor-v3", "external")] * 3, cost=np.nan),
            ai_rows("current", [("g2", "judge_v1@new")]),
        ], ignore_index=True),
        "human_annotations": pd.concat([
            human_rows("own_old", [("app", "g1", True), ("app", "g1", False), ("app", "g2", False)]),
            human_rows("imported", [("import:annotations.jsonl", "vendor-v3", False)] * 4),
        ], ignore_index=True),
    }
    runs = {"own_old": "g2", "prompt_old": "g2", "imported": "g2", "current": "g2"}
    view = stale_view(tables, runs, NOW, cost_ledger={"human_annotations": 0.5})
    assert list(view.columns) == list(STALE_BATCHES)
    assert set(zip(view["batch_id"], view["stage"])) == {("own_old", "ai_labels"), ("own_old", "human_annotations"), ("prompt_old", "ai_labels")}
    old = row(view, "own_old", "ai_labels")
    assert (old["n_labels"], old["n_stale"], old["stale_guideline_versions"]) == (2, 1, "g1")
    assert old["estimated_cost_usd"] == pytest.approx(0.01)
    prompt = row(view, "prompt_old", "ai_labels")
    assert (prompt["n_stale_judge_prompt"], prompt["stale_judge_prompt_versions"]) == (2, "judge_v1@old")
    assert prompt["estimated_cost_usd"] == pytest.approx(0.04)
    kept = row(view, "own_old", "human_annotations")
    assert (kept["n_stale"], kept["n_gold_stale"], kept["estimated_cost_usd"]) == (2, 1, pytest.approx(1.0))
    assert CURRENT_PROMPT not in set(view["stale_judge_prompt_versions"].dropna())
    # kept human labels never make a batch stale: only relabelling or rebuilding does
    assert batches_to_rerun(view) == ["own_old", "prompt_old"]


def test_a_batch_whose_last_run_used_older_guidelines_is_stale_even_with_imported_labels():
    tables = {"ai_labels": ai_rows("imported", [("vendor-v3", "external")] * 3)}
    runs = {"imported": "g1", "never_here": None, "fresh": "g2", "half": "g2 (that run stopped before preference_dataset)"}
    view = stale_view(tables, runs, NOW, final_label_counts={"imported": 3, "fresh": 5, "never_here": 7})
    assert set(view["stage"]) == {RUN_STAGE} and batches_to_rerun(view) == ["half", "imported", "never_here"]
    imported = row(view, "imported", RUN_STAGE)
    assert (imported["n_labels"], imported["n_stale"], imported["stale_guideline_versions"], imported["estimated_cost_usd"]) == (3, 3, "g1", 0.0)
    assert row(view, "never_here", RUN_STAGE)["stale_guideline_versions"] == NO_RUN_RECORDED
    full = stale_view(tables, runs, NOW, include_current=True)
    assert row(full, "fresh", RUN_STAGE)["n_stale"] == 0 and pd.isna(row(full, "fresh", RUN_STAGE)["stale_guideline_versions"])


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, out


def pipeline_run(batch_id: str) -> None:
    """The `pipeline` job on one batch in the instance at $DAGSTER_HOME, as `prefpipe run` does."""
    from prefpipe.definitions import build_definitions

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("batches", [batch_id])
        result = build_definitions().resolve_job_def("pipeline").execute_in_process(partition_key=batch_id, instance=instance, raise_on_error=False)
    assert result.success


@pytest.mark.slow
def test_a_guideline_edit_makes_prefpipe_stale_list_the_batch_and_the_dry_run_backfill_exactly_it(project_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    pipeline_run("mini")
    code, out = run_cli(capsys, "stale")
    assert code == 0 and "mini: up to date" in out and "0 of 1 batch(es) stale" in out

    guidelines = project_data / "guidelines" / "guidelines.md"
    guidelines.write_text(guidelines.read_text() + "\n- When both answers are correct, prefer the one that cites its source.\n")
    make_batch(project_data, "fresh")
    pipeline_run("fresh")  # made under the edited guidelines

    code, out = run_cli(capsys, "stale")
    assert code == 0 and "mini: STALE" in out and "fresh: up to date" in out and "1 of 2 batch(es) stale: mini" in out
    code, out = run_cli(capsys, "stale", "--json")
    records = json.loads(out)
    assert [(r["batch_id"], r["stage"]) for r in records] == [("mini", RUN_STAGE)]
    assert records[0]["n_labels"] == 6 and records[0]["n_stale"] == 6  # mini's final labels are rebuilt
    code, out = run_cli(capsys, "backfill", "--stale", "--dry-run")
    assert code == 0 and out.splitlines()[1:] == ["  mini"]

    # the check says the same per batch in the instance the UI reads
    code, out = run_cli(capsys, "stale", "--record")
    assert code == 0 and "shows 1 failing (WARN)" in out
    with dg.DagsterInstance.get() as instance:
        key = dg.AssetCheckKey(dg.AssetKey("ai_labels"), "labels_under_current_versions")
        latest = {}
        for record in reversed(instance.event_log_storage.get_asset_check_execution_history(key, limit=20)):
            latest[record.partition] = record.status.value
        assert latest == {"mini": "FAILED", "fresh": "SUCCEEDED"}

        # a run that relabels mini but stops before the export leaves it stale
        from prefpipe.definitions import build_definitions

        partial = dg.materialize(build_definitions().assets, selection=["guidelines", "prompts", "response_pairs", "generation_calls", "ai_labels", "judge_calls"], partition_key="mini",
                                 instance=instance, resources=build_definitions().resources)
        assert partial.success
    code, out = run_cli(capsys, "stale", "--json")
    (record,) = json.loads(out)
    assert record["batch_id"] == "mini" and record["stale_guideline_versions"].endswith("(that run stopped before preference_dataset)")


def test_backfill_of_a_batch_without_folder_is_refused(project_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert main(["backfill", "--batch", "nope", "--dry-run"]) == 2
    assert "no batch folder with a prompts.jsonl for nope" in capsys.readouterr().err
    assert run_cli(capsys, "backfill", "--stale", "--dry-run") == (0, "nothing to backfill: every batch is up to date\n")


def test_a_batch_whose_only_run_failed_is_never_completed(project_data, tmp_path, monkeypatch, capsys):
    """No endpoint and no imported verdicts: the run stops at ai_labels and puts back what it wrote.
    `prefpipe stale` used to leave such a batch out (or call it STALE with "?" counts)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (tmp_path / "dagster_home").mkdir()
    (project_data / "batches" / "mini" / "ai_labels.jsonl").unlink()
    from prefpipe.definitions import build_definitions

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("batches", ["mini"])
        result = build_definitions().resolve_job_def("pipeline").execute_in_process(partition_key="mini", instance=instance, raise_on_error=False)
    assert not result.success
    code, out = run_cli(capsys, "stale")
    assert code == 0 and "mini: never completed: its last run (" in out and ") failed at ai_labels; fix what it said" in out
    assert "STALE" not in out and "?" not in out and "0 of 1 batch(es) stale" in out
    code, out = run_cli(capsys, "stale", "--json")
    (record,) = json.loads(out)
    assert record["stage"] == RUN_STAGE and record["action"].startswith("never completed") and record["stale_guideline_versions"] is None
    assert run_cli(capsys, "backfill", "--stale", "--dry-run") == (0, "nothing to backfill: every batch is up to date\n")
