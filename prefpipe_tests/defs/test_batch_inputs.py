"""Bad input anywhere in a batch folder fails the run in `prompts`, before any table is written:
a rerun with one new prompt and one bad line leaves every stored row of the batch as it was."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from prefpipe.cli.pipeline import step_failures
from prefpipe.core import schemas
from prefpipe.core.warehouse import read_table
from prefpipe_tests.defs.conftest import materialize, write_jsonl

NEW_PROMPT = {"id": "q6", "prompt": "Question 6: a new one.", "responses": [
    {"model": "model-x", "text": "A short answer."}, {"model": "model-y", "text": "A rather different and longer answer, with detail."}]}
BAD_INPUT = {
    "annotations.jsonl": ({"pair_id": "q0:0", "annotator_id": "ann9", "label": "maybe"}, "annotations.jsonl, line 19, field 'label'"),
    "gold.jsonl": ({"pair_id": "g1", "prompt": "Q", "response_a": "a", "response_b": "b", "label": "better"}, "gold.jsonl, line 1, field 'label'"),
}


def run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One run of batch mini with no defs-state storage in context (see prefpipe_tests/conftest.py):
    a storage an earlier test's instance left behind could otherwise be resolved between the two runs."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        return materialize("mini", instance)


def batch_rows(batch_id: str) -> dict:
    """Every table's rows of the batch (the guidelines table is not per batch: all of it)."""
    return {table: read_table(table, batch_id=None if table == "guidelines" else batch_id) for table in schemas.TABLES}


@pytest.mark.parametrize("file", BAD_INPUT)
def test_a_bad_line_fails_prompts_and_leaves_every_table_as_it_was(project_data, file):
    with dg.instance_for_test() as instance:  # closed at the end: it leaves no storage behind for the next test
        check_a_bad_line(project_data, file, instance)


def check_a_bad_line(project_data, file, instance):
    first = run(instance)
    assert first.success
    before = batch_rows("mini")
    assert len(before["prompts"]) == 6 and len(before["human_queue"]) > 0

    folder = project_data / "batches" / "mini"
    with open(folder / "prompts.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(NEW_PROMPT) + "\n")
    line, where = BAD_INPUT[file]
    with open(folder / file, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    result = run(instance)

    assert not result.success
    failures = step_failures(result)
    assert [step for step, _ in failures] == ["prompts"], failures
    assert where in failures[0][1]
    written = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert written <= {"guidelines"}, written  # no table of the batch written, not even to be undone after the failure
    after = batch_rows("mini")
    for table, rows in before.items():
        assert after[table].equals(rows), table


def test_response_pairs_alone_says_when_no_prompt_has_two_responses(data_dir):
    """prompts run alone cannot know the pair strategy; response_pairs, run after it, says what is wrong."""
    folder = data_dir / "batches" / "single"
    write_jsonl(folder / "prompts.jsonl", [{"id": "q0", "prompt": "One answer only.", "responses": [{"model": "m", "text": "t"}]},
                                           {"id": "q1", "prompt": "No answer."}])
    from prefpipe.definitions import build_definitions

    defs = build_definitions()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", ["single"])
        for selection in ("prompts", "response_pairs generation_calls"):
            result = dg.materialize(defs.assets, selection=selection.split(), partition_key="single", instance=instance,
                                    resources=defs.resources, raise_on_error=False)
        assert not result.success
        assert any("no prompt in prompts.jsonl has two candidate responses" in message for _, message in step_failures(result))
