"""Batch API mode for real: JSONL uploaded to /v1/files, a batch created, polled, output
downloaded and ingested into the cache at the batch price."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefpipe.llm.client import LLMClient
from prefpipe.llm.request import ChatRequest, Completion
from prefpipe.testing.scripted_server import Fault, ScriptedServer
from prefpipe.llm.usage import usage_frame
from prefpipe_tests.llm.fixtures import make_client


def run_batch(client: LLMClient, requests: list[ChatRequest]) -> tuple[list[Completion], list[str]]:
    async def go() -> tuple[list[Completion], list[str]]:
        async with client.batch_api() as batch:
            answers = [await client.acomplete(r) for r in requests]
        return answers, batch.open_jobs()

    return client.run(go)


def test_submit_poll_ingest_then_plain_cache_hits(server: ScriptedServer, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"gpt-4o-mini": {"input": 1.0, "output": 4.0}}}))
    cache = tmp_path / "c.sqlite3"
    requests = [ChatRequest.chat("gpt-4o-mini", [("user", f"question {i}")], logprobs=True, item_id=str(i)) for i in range(3)]
    server.on("question 2", Fault("500"))

    client = make_client(server, cache, prices_path=str(prices))
    answers, jobs = run_batch(client, requests)
    assert [a.status for a in answers] == ["pending"] * 3 and len(jobs) == 1
    assert server.counts["/v1/files"] == 1 and server.counts["/v1/batches"] == 1 and server.chat_requests == []
    uploaded = server.batch_api.content(server.batch_api.uploads()[0]).decode().splitlines()
    assert [json.loads(line)["custom_id"] for line in uploaded] == [r.key for r in requests]

    # the job is still in progress at the first poll: nothing is submitted twice
    answers, jobs = run_batch(make_client(server, cache, prices_path=str(prices)), requests)
    assert [a.status for a in answers] == ["pending"] * 3 and server.counts["/v1/batches"] == 1

    # completed: answers ingested, the failed line reported on its row
    client = make_client(server, cache, prices_path=str(prices))
    answers, jobs = run_batch(client, requests)
    assert [a.status for a in answers] == ["ok", "ok", "failed"] and jobs == []
    assert answers[0].tokens is not None and "".join(answers[0].tokens) == answers[0].text
    assert "Batch API line failed" in (answers[2].error or "")
    usage = usage_frame(client.ledger, client.prices)
    ok = usage[usage["status"] == "ok"].iloc[0]
    full = (answers[0].prompt_tokens * 1.0 + answers[0].completion_tokens * 4.0) / 1e6
    assert bool(ok["batch"]) and not bool(ok["cached"]) and ok["cost_usd"] == pytest.approx(full / 2)

    # afterwards the answers are ordinary cache hits, even without Batch API mode; the failed
    # request is sent again (here synchronously), and nothing answered is ever sent again
    plain = make_client(server, cache).complete_many(requests)
    assert [a.cached for a in plain] == [True, True, False] and all(a.ok for a in plain)
    assert len(server.chat_requests) == 1 and "question 2" in server.chat_requests[0].body["messages"][0]["content"]
