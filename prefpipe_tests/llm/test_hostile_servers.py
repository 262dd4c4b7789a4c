"""The client against servers that answer with something unusable: a 100 MB body, nothing at all,
a byte at a time forever, or valid JSON with no answer in it. Each fails its own row, with the
reason, in bounded time; every other row of the batch is answered and cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefpipe.llm.cache import LLMCache
from prefpipe.llm.client import LLMClient, LLMSettings
from prefpipe.llm.request import ChatRequest, Completion
from prefpipe.testing.scripted_server import Fault, ScriptedServer
from prefpipe_tests.llm.fixtures import make_client

HUNDRED_MB = 100 * 2**20


def ask(text: str) -> ChatRequest:
    return ChatRequest.chat("test-model", [{"role": "user", "content": text}])


def run_batch(client: LLMClient, bad: str) -> tuple[Completion, list[Completion]]:
    """The bad request amid good ones; returns its answer and theirs."""
    answers = client.complete_many([ask("fine one"), ask(bad), ask("fine two"), ask("fine three")])
    return answers[1], [answers[0], *answers[2:]]


def assert_the_rest_answered_and_cached(rest: list[Completion], failed: Completion, cache: Path) -> None:
    assert all(a.ok and a.text for a in rest), [a.error for a in rest]
    stored = LLMCache(cache)
    assert stored.keys() == {a.key for a in rest}  # the failure is not stored: the next run retries it
    assert all(stored.get(a.key)["text"] == a.text for a in rest)
    assert failed.text is None and failed.key not in stored.keys()


def test_a_huge_body_is_refused_after_the_cap_without_reading_the_rest(server: ScriptedServer, tmp_path: Path) -> None:
    server.on("huge", Fault("huge_body", size=HUNDRED_MB), repeat=True)
    client = make_client(server, tmp_path / "c.sqlite3", max_response_bytes=1_000_000)
    huge, rest = run_batch(client, "huge")
    assert huge.status == "failed" and huge.attempts == 1  # not retried: the same answer would be paid for again
    assert "response larger than 1000000 bytes" in (huge.error or "")
    assert_the_rest_answered_and_cached(rest, huge, tmp_path / "c.sqlite3")
    server.wait_idle()
    # the client hung up after about 1 MB; the server streamed little more than the socket buffers
    assert server.counts["huge_body_bytes"] < HUNDRED_MB // 4


def test_the_default_cap_is_8_mb() -> None:
    assert LLMSettings().max_response_bytes == 8 * 2**20
    assert "larger one is refused" in (LLMSettings.model_fields["max_response_bytes"].description or "")


def test_a_server_that_never_sends_a_byte_times_out_and_fails_its_row(server: ScriptedServer, tmp_path: Path) -> None:
    server.on("silent", Fault("hang"), repeat=True)
    client = make_client(server, tmp_path / "c.sqlite3", timeout_s=0.5, max_attempts=2)
    silent, rest = run_batch(client, "silent")
    assert silent.status == "failed" and silent.attempts == 2
    assert "after 2 attempt(s)" in (silent.error or "") and "Timeout" in (silent.error or "")
    assert_the_rest_answered_and_cached(rest, silent, tmp_path / "c.sqlite3")
    server.wait_idle()
    assert server.in_flight == 0  # the client closed both connections it gave up on


def test_a_trickle_is_cut_off_by_the_attempt_deadline(server: ScriptedServer, tmp_path: Path) -> None:
    # a byte every 20 ms never trips a read timeout (a gap between two bytes); only a deadline ends it
    server.on("trickle", Fault("trickle", delay=0.02), repeat=True)
    client = make_client(server, tmp_path / "c.sqlite3", timeout_s=0.5, max_attempts=2)
    slow, rest = run_batch(client, "trickle")
    assert slow.status == "failed" and slow.attempts == 2
    assert "AttemptTimeout after 2 attempt(s): no complete answer within 0.5 s" in (slow.error or "")
    assert_the_rest_answered_and_cached(rest, slow, tmp_path / "c.sqlite3")
    server.wait_idle()
    assert server.in_flight == 0 and server.counts["trickle_bytes"] > 0


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty_choices", "'choices' is empty"),
        ("no_choices", "no 'choices' in the answer (it carries an error"),
        ("null_content", "message.content is null and there is no tool call (finish_reason 'stop')"),
    ],
)
def test_valid_json_without_an_answer_fails_its_row_with_the_reason(server: ScriptedServer, tmp_path: Path, kind: str, reason: str) -> None:
    server.on("empty", Fault(kind), repeat=True)  # type: ignore[arg-type]
    client = make_client(server, tmp_path / "c.sqlite3", max_attempts=2)
    empty, rest = run_batch(client, "empty")
    assert empty.status == "failed" and empty.attempts == 2  # retried like any malformed body, then given up
    assert empty.error is not None and empty.error.startswith("MalformedResponse after 2 attempt(s): ") and reason in empty.error
    assert_the_rest_answered_and_cached(rest, empty, tmp_path / "c.sqlite3")
