"""The client against the real scripted server: retries, Retry-After, bounded failure, cache,
samples per index, identical calls in flight, rate limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefpipe.llm.client import LLMClient, LLMConfigError, LLMSettings
from prefpipe.llm.request import ChatRequest
from prefpipe.testing.scripted_server import Fault, ScriptedServer
from prefpipe_tests.llm.fixtures import make_client


def ask(text: str, **kwargs) -> ChatRequest:
    return ChatRequest.chat("test-model", [{"role": "user", "content": text}], **kwargs)


def sent_for(server: ScriptedServer, text: str) -> list:
    return [s for s in server.chat_requests if text in s.body["messages"][-1]["content"]]


def test_retry_after_is_honoured_before_the_retry(server: ScriptedServer, client: LLMClient) -> None:
    server.on("slow down", Fault("429", retry_after=0.4))
    [answer] = client.complete_many([ask("slow down")])
    assert answer.ok and answer.attempts == 2
    first, second = sent_for(server, "slow down")
    assert (first.status, second.status) == (429, 200)
    # backoff_initial_s is 0.01, so only the server's Retry-After explains a gap this long
    assert second.at - first.at >= 0.4


@pytest.mark.parametrize("kind", ["500", "malformed", "cut", "timeout", "hang", "trickle", "empty_choices", "no_choices", "null_content"])
def test_transient_faults_are_retried(server: ScriptedServer, tmp_path: Path, kind: str) -> None:
    server.on("flaky", Fault(kind, delay=2.0))  # type: ignore[arg-type]
    client = make_client(server, tmp_path / "c.sqlite3", timeout_s=0.5)
    [answer] = client.complete_many([ask("flaky")])
    assert answer.ok, answer.error
    assert answer.attempts == 2
    assert answer.text and "[[q=" in answer.text


def test_failure_is_recorded_after_bounded_tries_and_the_rest_succeeds(server: ScriptedServer, tmp_path: Path) -> None:
    server.on("always broken", Fault("500"), repeat=True)
    client = make_client(server, tmp_path / "c.sqlite3", max_attempts=3)
    answers = client.complete_many([ask("always broken"), ask("fine one"), ask("fine two")])
    assert [a.status for a in answers] == ["failed", "ok", "ok"]
    assert answers[0].attempts == 3 and "HTTP 500" in (answers[0].error or "")
    assert len(sent_for(server, "always broken")) == 3
    # a failure is not cached: the next run tries again
    server.rules.clear()
    [again] = client.complete_many([ask("always broken")])
    assert again.ok and not again.cached


def test_a_bad_request_is_not_retried(server: ScriptedServer, client: LLMClient) -> None:
    server.on("invalid", Fault("400"), repeat=True)
    [answer] = client.complete_many([ask("invalid")])
    assert answer.status == "failed" and answer.attempts == 1
    assert "HTTP 400" in (answer.error or "")


def test_a_cached_answer_sends_no_request_even_from_a_new_client(server: ScriptedServer, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite3"
    first = make_client(server, cache).complete_many([ask("one"), ask("two")])
    assert len(server.chat_requests) == 2
    again = make_client(server, cache).complete_many([ask("one"), ask("two")])
    assert len(server.chat_requests) == 2
    assert [a.cached for a in again] == [True, True]
    assert [a.text for a in again] == [a.text for a in first]


def test_temperature_above_zero_is_cached_per_sample_index(server: ScriptedServer, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite3"
    samples = [ask("write a poem", temperature=0.8, sample_index=k) for k in range(4)]
    texts = [a.text for a in make_client(server, cache).complete_many(samples)]
    assert len(set(texts)) == 4 and len(server.chat_requests) == 4
    rerun = make_client(server, cache).complete_many(samples)
    assert [a.text for a in rerun] == texts and len(server.chat_requests) == 4
    # at temperature 0 the sample index does not matter: one call serves every index
    greedy = make_client(server, cache).complete_many([ask("write a poem", sample_index=k) for k in range(3)])
    assert len({a.text for a in greedy}) == 1 and len(server.chat_requests) == 5


def test_identical_calls_in_flight_are_sent_once(server: ScriptedServer, client: LLMClient) -> None:
    answers = client.complete_many([ask("same"), ask("same"), ask("same")])
    assert len(server.chat_requests) == 1
    assert sorted(a.cached for a in answers) == [False, True, True]
    assert len({a.text for a in answers}) == 1


def test_request_rate_limit_spaces_requests(server: ScriptedServer, tmp_path: Path) -> None:
    client = make_client(server, tmp_path / "c.sqlite3", requests_per_minute=600)  # 10 a second, bursts of 10
    client.complete_many([ask(f"q{i}") for i in range(25)])
    times = sorted(s.at for s in server.chat_requests)
    # 10 at once, then 15 more at 10 per second take about 1.5 s; unlimited they take a few ms
    assert times[-1] - times[0] >= 1.0


def test_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    settings = LLMSettings(cache_path=str(tmp_path / "c.sqlite3"))
    assert settings.resolved_base_url() == server.base_url and settings.resolved_api_key() == "from-env"
    [answer] = LLMClient(settings).complete_many([ask("hello")])
    assert answer.ok
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        LLMSettings().resolved_api_key()


def test_logprobs_come_back_token_by_token(client: LLMClient) -> None:
    [answer] = client.complete_many([ask("hello", logprobs=True)])
    assert answer.tokens and answer.token_logprobs is not None and "".join(answer.tokens) == answer.text
    assert answer.prompt_tokens and answer.completion_tokens == len(answer.tokens)
