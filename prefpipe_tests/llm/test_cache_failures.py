"""An answer cache file that is damaged or locked by another process.

Corrupt (truncated, overwritten): the batch fails before anything is sent, with one
LLMCacheError naming the file and saying to move it aside; the file is left exactly as it was.
Locked: reads go on (WAL); a write that waits past cache_busy_timeout_s drops the cache for the
rest of the run with one warning, and every answer is still returned. A lock that blocks even
reading fails the batch clearly, before anything is sent."""

from __future__ import annotations

import logging
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from prefpipe.errors import PrefpipeError
from prefpipe.llm.cache import LLMCache
from prefpipe.llm.client import LLMCacheError
from prefpipe.llm.request import ChatRequest
from prefpipe.testing.scripted_server import ScriptedServer
from prefpipe_tests.llm.fixtures import make_client

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO completions VALUES ('held', 'm', x'00', 'now')")
print("locked", flush=True)
sys.stdin.read()
conn.execute("COMMIT")
"""


def ask(text: str) -> ChatRequest:
    return ChatRequest.chat("test-model", [{"role": "user", "content": text}])


def fill(server: ScriptedServer, path: Path, requests: list[ChatRequest]) -> dict[str, str]:
    client = make_client(server, path)
    answers = {a.key: a.text for a in client.complete_many(requests)}
    client.close()  # the last connection checkpoints the WAL: everything is in the main file
    return answers


@contextmanager
def locked_by_another_process(path: Path, mode: str) -> Iterator[None]:
    """Another process holds a write transaction on `path` (or, "exclusive", every lock)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    noise = random.Random(0).randbytes(len(data))
    if how == "truncated to half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage bytes":
        path.write_bytes(noise)
    elif how == "middle overwritten":
        third = len(data) // 3
        path.write_bytes(data[:third] + noise[third : 2 * third] + data[2 * third :])


@pytest.mark.parametrize("how", ["truncated to half", "garbage bytes", "middle overwritten"])
def test_a_corrupt_cache_fails_the_batch_before_anything_is_sent(server: ScriptedServer, tmp_path: Path, how: str) -> None:
    path = tmp_path / "cache.sqlite3"
    requests = [ask(f"question {i}") for i in range(300)]
    fill(server, path, requests)
    damage(path, how)
    damaged, sent = path.read_bytes(), len(server.chat_requests)
    client = make_client(server, path)
    with pytest.raises(LLMCacheError) as failed:
        client.complete_many(requests + [ask("a new question")])
    client.close()
    message = str(failed.value)
    assert f"the answer cache {path} is corrupt" in message and f"mv {path} {path}.corrupt" in message
    assert isinstance(failed.value, PrefpipeError) and failed.value.path == path
    assert len(server.chat_requests) == sent  # nothing sent, nothing paid
    assert path.read_bytes() == damaged  # never deleted, repaired or rewritten


def test_a_stored_answer_that_no_longer_decodes_is_reported_as_corruption(server: ScriptedServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    fill(server, path, [ask("one"), ask("two")])
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE completions SET payload = x'deadbeef' WHERE key = ?", (ask("two").key,))
    with pytest.raises(LLMCacheError, match=r"is corrupt \(the stored answer .* does not decode"):
        make_client(server, path).complete_many([ask("one"), ask("two")])
    assert len(server.chat_requests) == 2


def test_a_write_lock_held_elsewhere_is_waited_for_then_the_batch_goes_on_without_the_cache(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    old = [ask(f"old {i}") for i in range(3)]
    new = [ask(f"new {i}") for i in range(5)]
    stored = fill(server, path, old)
    with locked_by_another_process(path, "write"), caplog.at_level(logging.WARNING, logger="prefpipe.llm.client"):
        client = make_client(server, path, cache_busy_timeout_s=0.2)
        answers = client.complete_many(old + new)
        client.close()
    assert all(a.ok and a.text for a in answers)
    assert [a.cached for a in answers] == [True] * 3 + [False] * 5  # read from the cache (WAL lets readers in), the rest bought
    warned = [r.getMessage() for r in caplog.records if "answer cache" in r.getMessage()]
    assert len(warned) == 1, warned  # said once, not once per answer
    assert f"the answer cache {path} is locked by another process (waited 0.2 s" in warned[0]
    assert "goes on without the cache" in warned[0]
    after = LLMCache(path)
    assert {k: after.get(k)["text"] for k in stored} == stored  # nothing cached was lost or changed
    assert "held" in after.keys()  # the other process's transaction went through
    assert not any(r.key in after.keys() for r in new)
    # the next run, with the lock gone, buys the missing answers once more and keeps them
    rerun = make_client(server, path).complete_many(new)
    assert all(a.ok and not a.cached for a in rerun) and all(r.key in after.keys() for r in new)


def test_a_lock_that_blocks_reading_fails_the_batch_clearly_after_the_busy_timeout(server: ScriptedServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    fill(server, path, [ask("old")])
    with locked_by_another_process(path, "exclusive"):
        with pytest.raises(LLMCacheError, match=r"is locked by another process \(waited 0.2 s, cache_busy_timeout_s\)\. Let the other run finish"):
            make_client(server, path, cache_busy_timeout_s=0.2).complete_many([ask("old"), ask("new")])
    assert len(server.chat_requests) == 1


def test_a_cache_that_fails_a_lookup_mid_batch_is_dropped_not_raised(server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache.sqlite3"
    fill(server, path, [ask("old"), ask("follow-up")])
    client = make_client(server, path)
    client.prefetch([ask("old")])  # the batch's read succeeded; then a stored answer it did not read is damaged
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE completions SET payload = x'deadbeef' WHERE key = ?", (ask("follow-up").key,))
    with caplog.at_level(logging.WARNING, logger="prefpipe.llm.client"):
        assert client.lookup(ask("follow-up")) is None  # a miss: the call is sent, not the batch crashed
        assert client.cache is None
        old = client.lookup(ask("old"))
    assert old is not None and old.cached  # what the batch had already read is still used
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and f"the answer cache {path} is corrupt" in warned[0]
    client.close()
