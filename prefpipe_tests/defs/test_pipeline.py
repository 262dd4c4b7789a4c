"""The whole graph on a small real batch with dg.materialize, reruns, and bad input."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np

from prefpipe.cli.pipeline import step_failures
from prefpipe.core.labels import SCALE
from prefpipe.core.warehouse import read_table, row_counts
from prefpipe.quality import final_labels
from prefpipe_tests.defs.conftest import make_batch, materialize


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(message for _, message in step_failures(result))


def test_whole_graph_on_a_small_batch(project_data):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize("mini", instance)
    assert result.success, failure_messages(result)

    ai = read_table("ai_labels", batch_id="mini")
    assert len(ai) == 6 and (ai["judge"] == "ext-judge").all()
    garbage = ai[ai["pair_id"] == "q3:0"].iloc[0]
    assert garbage["status"] == "unparsed" and (garbage["label"] is None or garbage["label"] != garbage["label"])
    assert json.loads(garbage["raw"])["verdict"] == "garbage"

    routing = read_table("routing", batch_id="mini").set_index("pair_id")
    assert routing.loc["q3:0", "route"] == "human" and routing.loc["q3:0", "reason"] == "unparsed"

    final = read_table("final_labels", batch_id="mini").set_index("pair_id")
    assert final.loc["q0:0", "label"] == "A>B" and final.loc["q1:0", "label"] == "B>A" and final.loc["q2:0", "label"] == "A=B"
    assert (final["source"] == "human").all() and (final["method"] == "dawid_skene").all()  # the default, method auto
    people = read_table("filtered_annotations", batch_id="mini")
    expected = final_labels(people[people["role"] == "annotator"], role="role", categories=SCALE).set_index("pair_id")
    assert (final.loc[expected.index, "label"] == expected["label"]).all()  # the asset runs exactly the library's default
    assert np.allclose(final.loc[expected.index, "confidence"].to_numpy(dtype=float), expected["confidence"].to_numpy(dtype=float))

    prefs = read_table("preference_dataset", batch_id="mini").set_index("pair_id")
    assert "q2:0" not in prefs.index  # a tie carries no preference
    assert prefs.loc["q1:0", "chosen"].startswith("A longer")  # B preferred: chosen is response B

    report = read_table("agreement_report", batch_id="mini")
    assert {"fleiss_kappa", "krippendorff_alpha_ordinal"} <= set(report["metric"])

    first = row_counts(["mini"])
    again = materialize("mini", instance)
    assert again.success, failure_messages(again)
    assert row_counts(["mini"]).equals(first)  # a rerun replaces the batch's rows, never duplicates them


def test_final_label_method_comes_from_run_config(project_data):
    instance = dg.DagsterInstance.ephemeral()
    run_config = dg.RunConfig(ops={"final_labels": {"config": {"method": "majority"}}})
    result = materialize("mini", instance, run_config=run_config)
    assert result.success, failure_messages(result)
    assert set(read_table("final_labels", batch_id="mini")["method"]) == {"majority"}


def test_bad_prompts_fail_the_batch_and_leave_every_table_intact(project_data):
    instance = dg.DagsterInstance.ephemeral()
    assert materialize("mini", instance).success
    before = {t: read_table(t) for t in ("prompts", "response_pairs", "final_labels", "preference_dataset")}

    cases = {
        "malformed": ['{"id": "a", "prompt": "x", "responses": [{"model": "m", "text": "1"}, {"model": "n", "text": "2"}]}', '{"id": "b", "prompt": '],
        "missing-prompt": ['{"id": "a", "responses": []}'],
        "duplicate-ids": ['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'],
    }
    expected = {"malformed": ("line 2", "not valid JSON"), "missing-prompt": ("line 1", "field 'prompt'"), "duplicate-ids": ("line 2", "field 'id'")}
    for batch_id, lines in cases.items():
        folder = project_data / "batches" / batch_id
        folder.mkdir(parents=True)
        (folder / "prompts.jsonl").write_text("\n".join(lines) + "\n")
        result = materialize(batch_id, instance)
        assert not result.success
        message = failure_messages(result)
        assert str(folder / "prompts.jsonl") in message and all(part in message for part in expected[batch_id]), message

    # the same bad input in a batch that already has rows: its rows stay as they were
    (project_data / "batches" / "mini" / "prompts.jsonl").write_text('{"id": "q0", "prompt": "x"}\n{"id": "q0", "prompt": "y"}\n')
    assert not materialize("mini", instance).success
    for table, frame in before.items():
        assert read_table(table).equals(frame), table


def test_a_bad_annotation_file_fails_without_touching_stored_rows(project_data):
    instance = dg.DagsterInstance.ephemeral()
    assert materialize("mini", instance).success
    before = read_table("human_annotations")
    with open(project_data / "batches" / "mini" / "annotations.jsonl", "a") as f:
        f.write(json.dumps({"pair_id": "q0:0", "annotator_id": "ann9", "label": "maybe"}) + "\n")
    result = materialize("mini", instance)
    assert not result.success
    assert "annotations.jsonl, line 19, field 'label'" in failure_messages(result)
    assert read_table("human_annotations").equals(before)


def test_a_human_budget_is_spent_by_active_learning(project_data):
    folder = make_batch(project_data, "budget")
    (folder / "annotations.jsonl").unlink()
    config = json.loads((folder / "batch.json").read_text())
    (folder / "batch.json").write_text(json.dumps({**config, "human_budget": 6}))
    result = materialize("budget", dg.DagsterInstance.ephemeral())
    assert result.success, failure_messages(result)
    routing = read_table("routing", batch_id="budget")
    assert (routing["route"] == "human").sum() == 2 and (routing["route"] == "over_budget").sum() == 4  # 6 labels = 2 pairs x 3
    queue = read_table("human_queue", batch_id="budget")
    assert queue.loc[queue["enqueued"], "labels_wanted"].sum() == 6
    final = read_table("final_labels", batch_id="budget")
    over = set(routing.loc[routing["route"] == "over_budget", "pair_id"])
    assert set(final["pair_id"]) <= over and (final["source"] == "ai").all()  # the AI label stands where nobody will look
