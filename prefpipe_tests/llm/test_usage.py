"""Usage rows priced from the price table: what a call cost, and what this run spent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from prefpipe.llm.request import ChatRequest
from prefpipe.testing.scripted_server import ScriptedServer
from prefpipe.llm.usage import USAGE, usage_frame
from prefpipe_tests.llm.fixtures import make_client


def test_cost_from_reported_tokens_and_zero_spend_when_cached(server: ScriptedServer, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"priced-model": {"input": 2.0, "output": 8.0}}}))
    cache = tmp_path / "c.sqlite3"
    requests = [
        ChatRequest.chat("priced-model", [("user", "tell me a story")], stage="generation", actor="two_models", item_id="p1"),
        ChatRequest.chat("free-model", [("user", "tell me a story")], stage="generation", actor="two_models", item_id="p1"),
    ]
    first = make_client(server, cache, prices_path=str(prices))
    answers = first.complete_many(requests)
    usage = usage_frame(first.ledger, first.prices)
    assert list(usage.columns) == list(USAGE)
    row = usage[usage["model"] == "priced-model"].iloc[0]
    expected = (answers[0].prompt_tokens * 2.0 + answers[0].completion_tokens * 8.0) / 1e6
    assert row["cost_usd"] == pytest.approx(expected) and row["spent_usd"] == pytest.approx(expected)
    assert (row["stage"], row["actor"], row["item_id"], bool(row["cached"]), row["attempts"]) == ("generation", "two_models", "p1", False, 1)
    assert math.isnan(usage[usage["model"] == "free-model"].iloc[0]["cost_usd"])

    again = make_client(server, cache, prices_path=str(prices))
    again.complete_many(requests)
    rerun = usage_frame(again.ledger, again.prices)
    cached = rerun[rerun["model"] == "priced-model"].iloc[0]
    assert bool(cached["cached"]) and cached["spent_usd"] == 0.0 and cached["cost_usd"] == pytest.approx(expected)
