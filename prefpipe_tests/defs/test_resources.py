"""The Dagster resource and run-config twins, materialized through Dagster against the server."""

# no `from __future__ import annotations`: Dagster reads the asset's config annotation at runtime

from pathlib import Path

import dagster as dg
import pydantic
import pytest

from prefpipe.judge.judge import JudgeConfig
from prefpipe.llm.client import LLMSettings
from prefpipe.llm.request import ChatRequest
from prefpipe.defs.labelling.ai_labels import JudgeRunConfig, JudgeSetRunConfig
from prefpipe.defs.labelling.response_pairs import GenerationRunConfig
from prefpipe.defs.resources import LLMResource
from prefpipe.defs.run_config import from_run_config
from prefpipe.testing.scripted_server import ScriptedServer


def test_resource_reads_secrets_through_envvar_and_calls_the_server(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFPIPE_TEST_LLM_KEY", "secret-from-env")
    seen: dict[str, object] = {}

    @dg.asset
    def answer(config: JudgeRunConfig, llm: LLMResource) -> None:
        judges = from_run_config(config, JudgeSetRunConfig).judges
        client = llm.get_client()
        seen["key"] = client.settings.resolved_api_key()
        seen["judges"] = judges
        [reply] = client.complete_many([ChatRequest.chat("m", [("user", "hello")])])
        seen["ok"] = reply.ok

    resource = LLMResource(base_url=server.base_url, api_key=dg.EnvVar("PREFPIPE_TEST_LLM_KEY"), cache_path=str(tmp_path / "c.sqlite3"), concurrency=4)
    result = dg.materialize(
        [answer],
        resources={"llm": resource},
        run_config={"ops": {"answer": {"config": {"judges": [{"model": "judge-a"}, {"model": "judge-b", "both_orders": False}]}}}},
    )
    assert result.success
    assert seen["key"] == "secret-from-env" and seen["ok"] is True
    assert seen["judges"] == [JudgeConfig(model="judge-a"), JudgeConfig(model="judge-b", both_orders=False)]
    assert len(server.chat_requests) == 1


def test_run_config_twins_keep_defaults_and_validation() -> None:
    assert GenerationRunConfig().strategy == "existing" and GenerationRunConfig(strategy="best_of_n").n == 8
    assert JudgeRunConfig().judges[0].model == JudgeConfig().model
    with pytest.raises(pydantic.ValidationError):
        GenerationRunConfig(strategy="three_models")


def test_resource_fields_and_defaults_are_the_settings() -> None:
    # LLMResource takes LLMSettings' fields (and descriptions) from the settings model itself
    assert set(LLMResource.model_fields) == set(LLMSettings.model_fields)
    assert LLMResource().settings() == LLMSettings()
