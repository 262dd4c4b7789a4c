"""The scripted server itself: what it answers, and that random faults hit first attempts only."""

from __future__ import annotations

import json
import urllib.request

from prefpipe.testing.scripted_server import (
    FaultRates,
    ScriptedServer,
    ServerState,
    completion_body,
    default_responder,
    quality,
)


def post(server: ScriptedServer, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.base_url + "/chat/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_judge_answers_do_not_depend_on_order() -> None:
    def body(first: str, second: str) -> dict:
        return {"model": "m", "messages": [{"role": "system", "content": "end with VERDICT: X"}, {"role": "user", "content": f"<response_a>\n{first}\n</response_a>\n<response_b>\n{second}\n</response_b>"}], "logprobs": True}

    good, bad = "fine [[q=0.9]]", "poor [[q=0.2]]"
    assert default_responder(body(good, bad), 0, ServerState()).text.endswith("VERDICT: A>>B")
    assert default_responder(body(bad, good), 0, ServerState()).text.endswith("VERDICT: B>>A")
    reply = default_responder(body(good, bad), 0, ServerState())
    payload = completion_body(body(good, bad), reply)
    tokens = payload["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == reply.text
    assert quality("x [[q=0.25]]") == 0.25


def test_random_faults_hit_first_attempts_only() -> None:
    with ScriptedServer(faults=FaultRates(rate_429=1.0, retry_after=0.1)) as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
        assert post(server, body)[0] == 429
        assert post(server, body)[0] == 200
        assert server.counts["status_429"] == 1 and server.counts["status_200"] == 1


def test_unknown_routes_are_404() -> None:
    with ScriptedServer() as server:
        with urllib.request.urlopen(server.url + "/_stats", timeout=10) as response:
            assert json.loads(response.read())["chat_requests"] == 0
        try:
            urllib.request.urlopen(server.url + "/v1/nothing", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        else:
            raise AssertionError("expected 404")
