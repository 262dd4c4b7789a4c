"""Generation and the judge through Dagster, against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import json

import dagster as dg

from prefpipe.defs.resources import LLMResource
from prefpipe.testing.scripted_server import ScriptedServer
from prefpipe.cli.pipeline import step_failures
from prefpipe.core.warehouse import read_table
from prefpipe_tests.defs.conftest import materialize, write_jsonl

RUN_CONFIG = dg.RunConfig(
    ops={
        "response_pairs": {"config": {"strategy": "two_models", "model": "model-a", "model_b": "model-b"}},
        "ai_labels": {"config": {"judges": [{"model": "judge-model"}]}},
    }
)


def test_generation_and_judge_assets_against_a_loopback_server(project_data, tmp_path):
    write_jsonl(project_data / "batches" / "gen" / "prompts.jsonl", [{"id": f"g{i}", "prompt": f"Explain idea number {i} to a child."} for i in range(8)])
    instance = dg.DagsterInstance.ephemeral()
    with ScriptedServer() as server:
        llm = LLMResource(base_url=server.base_url, api_key="EMPTY", cache_path=str(tmp_path / "cache.sqlite3"), backoff_initial_s=0.01)
        result = materialize("gen", instance, resources={"llm": llm}, run_config=RUN_CONFIG)
        assert result.success, step_failures(result)
        first_requests = len(server.chat_requests)

        pairs = read_table("response_pairs", batch_id="gen")
        assert len(pairs) == 8 and not pairs["dropped"].any()
        assert {tuple(sorted(m)) for m in zip(pairs["model_a"], pairs["model_b"])} == {("model-a", "model-b")}
        assert json.loads(pairs["strategy_params"].iloc[0])["model_b"] == "model-b"

        labels = read_table("ai_labels", batch_id="gen")
        assert len(labels) == 8 and set(labels["judge"]) == {"judge-model"}
        assert labels["status"].isin(["ok", "inconsistent"]).all()
        ok = labels[labels["status"] == "ok"]
        assert ok["label_ab"].notna().all() and ok["label_ba"].notna().all()  # both orders judged
        assert ok["confidence"].between(0, 1).all()

        calls = read_table("judge_calls", batch_id="gen")
        assert len(calls) >= 16 and calls["prompt_tokens"].notna().all()
        assert len(read_table("generation_calls", batch_id="gen")) == 16

        routing = read_table("routing", batch_id="gen")
        assert len(routing) == 8 and set(routing["route"]) <= {"accepted", "spot_check", "human"}
        final = read_table("final_labels", batch_id="gen")
        assert set(final["source"]) <= {"ai"} and len(final) == int(routing["route"].isin(["accepted", "spot_check"]).sum())
        ledger = read_table("cost_report", batch_id="gen")
        assert ledger["item"].str.contains("judge-model").any()

        # a rerun is answered from the persistent cache: nothing is sent, nothing paid twice
        again = materialize("gen", instance, resources={"llm": llm}, run_config=RUN_CONFIG)
        assert again.success, step_failures(again)
        assert len(server.chat_requests) == first_requests
        assert read_table("judge_calls", batch_id="gen")["cached"].all()


def test_the_call_tables_describe_themselves():
    """generation_calls and judge_calls are second outputs of multi-assets: each has its own
    description in the UI, naming only columns the calls table has."""
    import dagster as dg

    from prefpipe.core.schemas import LLM_CALLS
    from prefpipe.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    described = {key: graph.get(dg.AssetKey(key)).description or "" for key in ("response_pairs", "generation_calls", "ai_labels", "judge_calls")}
    assert described["generation_calls"] != described["response_pairs"] and described["judge_calls"] != described["ai_labels"]
    for calls in ("generation_calls", "judge_calls"):
        text = described[calls]
        assert text.startswith("Every ") and "cost_usd" in text and "spent_usd" in text and "latency" not in text
        assert {"cost_usd", "spent_usd"} <= set(LLM_CALLS)
