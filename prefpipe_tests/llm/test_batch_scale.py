"""The Batch API path at scale, on small data: input files within both limits (each enforced
exactly), bulk keys and lines equal to `ChatRequest`'s, durable submission (a crash between two
batch creations submits nothing twice), output read in bounded chunks, and an expired or partly
failed job re-submitting only the requests left without an answer."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from prefpipe.llm import batch, batch_files
from prefpipe.llm.batch_files import BatchLimits, LineTooLarge, request_lines, write_files
from prefpipe.llm.bulk import BulkRequest, Column
from prefpipe.llm.request import ChatRequest
from prefpipe.testing.batch_api import BatchOutcome
from prefpipe.testing.scripted_server import Fault, ScriptedServer
from prefpipe_tests.llm.fixtures import make_client
from prefpipe_tests.llm.test_batch import run_batch as run


def requests(n: int, size: int = 10) -> list[ChatRequest]:
    return [ChatRequest.chat("m", [("user", f"question {i:03d} " + "x" * size)], item_id=str(i)) for i in range(n)]


def lines_of(reqs: list[ChatRequest]) -> list[pa.RecordBatch]:
    return list(request_lines(reqs, lambda r: r.body(), chunk=7))


def test_files_hold_at_most_max_requests(tmp_path: Path) -> None:
    files = list(write_files(lines_of(requests(25)), tmp_path, BatchLimits(max_requests=10, max_bytes=10**9)))
    assert [len(f.keys) for f in files] == [10, 10, 5]
    assert [len(f.path.read_bytes().splitlines()) for f in files] == [10, 10, 5]
    every = [json.loads(line)["custom_id"] for f in files for line in f.path.read_bytes().splitlines()]
    assert every == [r.key for r in requests(25)] and every == [k for f in files for k in f.keys]


def test_files_hold_at_most_max_bytes_exactly(tmp_path: Path) -> None:
    reqs = requests(20)
    sizes = [len(line.as_py().encode()) for b in lines_of(reqs) for line in b.column("line")]
    limit = sizes[0] * 3  # exactly three lines fit: the limit itself is allowed
    files = list(write_files(lines_of(reqs), tmp_path / "a", BatchLimits(max_requests=1000, max_bytes=limit)))
    assert all(f.n_bytes <= limit and f.path.stat().st_size == f.n_bytes for f in files)
    assert [len(f.keys) for f in files] == [3] * 6 + [2] and files[0].n_bytes == limit
    tighter = list(write_files(lines_of(reqs), tmp_path / "b", BatchLimits(max_requests=1000, max_bytes=limit - 1)))
    assert [len(f.keys) for f in tighter][0] == 2
    with pytest.raises(LineTooLarge):
        list(write_files(lines_of(reqs), tmp_path / "c", BatchLimits(max_bytes=sizes[0] - 1)))


def test_bulk_keys_and_lines_are_chat_requests(tmp_path: Path) -> None:
    texts = ["plain", "  \u3000 padded \u2003\n", 'quote " back \\ tab\t nul \x00 ctrl \x1f', "é 😀 \u2028 </x>", "'single' $dollar"]
    sample = ChatRequest.chat("gpt-x", [("system", "rules"), ("user", "x")], temperature=0.0, max_tokens=64, logprobs=True)
    bulk = BulkRequest.like(sample, (("system", ("rules",)), ("user", ("Q: ", Column("q"), "\n'A' $: ", Column("a"), " "))), {**sample.body(), "max_completion_tokens": 64})
    con = duckdb.connect()
    con.register("t", pa.table({"q": texts, "a": list(reversed(texts))}))
    contents = [c for _, c in bulk.contents_sql()]
    assert bulk.shared() == 1
    keys = bulk.keys((c,) for (c,) in con.execute(f"SELECT {contents[1]} FROM t").fetchall())
    con.register("k", pa.table({"key": keys, "n": range(len(keys))}))
    got = con.execute(f"SELECT key, {bulk.line_sql('key', contents)} AS line FROM t POSITIONAL JOIN k").fetchall()
    for (key, line), q, a in zip(got, texts, reversed(texts)):
        request = ChatRequest.chat("gpt-x", [("system", "rules"), ("user", f"Q: {q}\n'A' $: {a} ".strip())], temperature=0.0, max_tokens=64, logprobs=True)
        assert key == request.key
        parsed = json.loads(line)
        assert line.endswith("\n") and parsed["custom_id"] == key and parsed["url"] == "/v1/chat/completions"
        assert parsed["body"]["messages"] == request.body()["messages"] and parsed["body"]["max_completion_tokens"] == 64


def submitted_keys(server: ScriptedServer) -> list[str]:
    return [json.loads(line)["custom_id"] for fid in server.batch_api.uploads() for line in server.batch_api.content(fid).splitlines()]


def test_many_files_and_an_expired_job_resubmits_only_what_it_left(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "BatchLimits", lambda: BatchLimits(max_requests=4))
    reqs = requests(10)
    server.state.batch_polls = 0  # a job is answered at its first poll
    server.batch_api.script(BatchOutcome("expired", answered=3))
    answers, jobs = run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    assert {a.status for a in answers} == {"pending"} and len(jobs) == 3 and server.counts["/v1/batches"] == 3
    run(make_client(server, tmp_path / "c.sqlite3"), reqs)  # polls: the first job expired after 3 answers
    again = submitted_keys(server)[10:]
    assert again == [r.key for r in reqs[3:4]]  # only its one unanswered request, not the whole job
    client = make_client(server, tmp_path / "c.sqlite3")
    answers, jobs = run(client, reqs)
    assert [a.status for a in answers] == ["ok"] * 10 and jobs == []
    assert sorted(submitted_keys(server)) == sorted([r.key for r in reqs] + [reqs[3].key])


def test_a_partly_failed_job_resubmits_only_its_failed_lines(server: ScriptedServer, tmp_path: Path) -> None:
    reqs = requests(6)
    server.on("question 004 ", Fault("500"))
    run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    run(make_client(server, tmp_path / "c.sqlite3"), reqs)  # in progress
    answers, _ = run(make_client(server, tmp_path / "c.sqlite3"), reqs)  # completed: one line in the error file
    assert [a.status for a in answers] == ["ok"] * 4 + ["failed", "ok"]
    answers, jobs = run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    assert submitted_keys(server) == [r.key for r in reqs] + [reqs[4].key] and answers[4].status == "pending" and len(jobs) == 1


def test_a_crash_between_two_batch_creations_submits_nothing_twice(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "BatchLimits", lambda: BatchLimits(max_requests=3))
    reqs = requests(9)

    created: list[str] = []
    original = batch.BatchCollector._adopt

    def adopt_then_crash(self: batch.BatchCollector, marker: str, job: object) -> None:
        original(self, marker, job)
        created.append(marker)
        if len(created) == 1:
            raise KeyboardInterrupt("killed after the first batch was recorded")

    monkeypatch.setattr(batch.BatchCollector, "_adopt", adopt_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    monkeypatch.setattr(batch.BatchCollector, "_adopt", original)
    server.batch_api.create_failures = 1
    # the second creation is refused (a crash after its file was uploaded and recorded) ...
    with pytest.raises(Exception, match="scripted"):
        run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    # ... and a run after it creates that batch from the recorded file, then submits only the rest
    answers, jobs = run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    assert sorted(submitted_keys(server)) == sorted(r.key for r in reqs)
    assert server.counts["/v1/batches"] == 3


def test_a_batch_made_before_its_record_is_adopted_not_made_again(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: batch.BatchCollector, marker: str, job: object) -> None:
        raise KeyboardInterrupt("killed between creating the batch and recording its id")

    monkeypatch.setattr(batch.BatchCollector, "_adopt", crash)
    with pytest.raises(KeyboardInterrupt):
        run(make_client(server, tmp_path / "c.sqlite3"), requests(2))
    monkeypatch.undo()
    answers, jobs = run(make_client(server, tmp_path / "c.sqlite3"), requests(2))
    assert server.counts["/v1/batches"] == 1 and len(jobs) == 1 and len(server.batch_api.uploads()) == 1


def test_output_is_read_in_bounded_chunks(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_files, "READ_CHUNK_BYTES", 4096)
    monkeypatch.setattr(batch_files.chunks_of_lines, "__defaults__", (4096,))
    seen: list[int] = []
    original = batch_files.line_array

    def spy(chunk: bytes) -> pa.LargeStringArray:
        seen.append(len(chunk))
        return original(chunk)

    monkeypatch.setattr(batch, "line_array", spy)
    reqs = requests(300)
    for _ in range(3):
        answers, _ = run(make_client(server, tmp_path / "c.sqlite3"), reqs)
    output = [fid for fid in server._files if fid.startswith("file-out")]
    size = len(server.batch_api.content(output[0]))
    assert all(a.ok for a in answers) and len(seen) > 3 and sum(seen) == size
    assert max(seen) < 4096 + 2**17  # the chunk size plus one network read, however large the file


def test_chunks_of_lines_end_at_line_ends_and_stay_bounded() -> None:
    class Response:
        async def iter_bytes(self):  # type: ignore[no-untyped-def]
            body = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * (i % 50)) for i in range(2000))
            for at in range(0, len(body), 1000):
                yield body[at : at + 1000]

    async def collect() -> list[bytes]:
        return [c async for c in batch_files.chunks_of_lines(Response(), chunk_bytes=5000)]

    import asyncio

    chunks = asyncio.run(collect())
    assert all(c.endswith(b"\n") and len(c) < 5000 + 1000 for c in chunks) and len(chunks) > 10
    lines = [json.loads(line) for c in chunks for line in batch_files.line_array(c).to_pylist()]
    assert [x["n"] for x in lines] == list(range(2000))
