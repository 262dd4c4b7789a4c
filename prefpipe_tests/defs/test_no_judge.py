"""A batch without an AI judge: batch.json `"judge": "none"` sends every pair to people, a model name
there asks that judge, and with no endpoint at all the run stops at ai_labels with one message."""

from __future__ import annotations

import json

import dagster as dg

from prefpipe.cli.pipeline import judge_run_config, step_failures
from prefpipe.core.warehouse import read_table
from prefpipe.defs.resources import LLMResource
from prefpipe.testing.scripted_server import ScriptedServer
from prefpipe_tests.defs.conftest import materialize

UP_TO_ROUTING = ["prompts", "response_pairs", "generation_calls", "ai_labels", "judge_calls", "routing"]


def _without_imported_verdicts(project_data, **settings):
    folder = project_data / "batches" / "mini"
    (folder / "ai_labels.jsonl").unlink()
    config = json.loads((folder / "batch.json").read_text())
    (folder / "batch.json").write_text(json.dumps({**config, **settings}))
    return folder


def test_no_endpoint_stops_at_ai_labels_with_both_ways_on(project_data, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    folder = _without_imported_verdicts(project_data)
    result = materialize("mini", dg.DagsterInstance.ephemeral())
    assert not result.success
    (step, message), = step_failures(result)
    assert step == "ai_labels"
    assert "OPENAI_BASE_URL" in message and f'"judge": "none" in {folder / "batch.json"}' in message and "--judge none" in message


def test_judge_none_sends_every_pair_to_people(project_data, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _without_imported_verdicts(project_data, judge="none")
    result = materialize("mini", dg.DagsterInstance.ephemeral(), selection=UP_TO_ROUTING)
    assert result.success, step_failures(result)
    assert read_table("ai_labels", batch_id="mini").empty
    routing = read_table("routing", batch_id="mini")
    assert len(routing) == 6 and (routing["route"] == "human").all()


def test_a_judge_named_in_batch_json_is_the_one_asked(project_data, tmp_path):
    _without_imported_verdicts(project_data, judge="batch-judge")
    with ScriptedServer() as server:
        llm = LLMResource(base_url=server.base_url, api_key="EMPTY", cache_path=str(tmp_path / "cache.sqlite3"), backoff_initial_s=0.01)
        result = materialize("mini", dg.DagsterInstance.ephemeral(), resources={"llm": llm}, selection=UP_TO_ROUTING)
        assert result.success, step_failures(result)
        assert {r.body["model"] for r in server.chat_requests} == {"batch-judge"}
    assert set(read_table("ai_labels", batch_id="mini")["judge"]) == {"batch-judge"}


def test_the_judge_option_is_run_config():
    assert judge_run_config(None) == {}
    assert judge_run_config("none") == {"ops": {"ai_labels": {"config": {"run_judge": "never"}}}}
    assert judge_run_config("m") == {"ops": {"ai_labels": {"config": {"run_judge": "always", "judges": [{"model": "m"}]}}}}
