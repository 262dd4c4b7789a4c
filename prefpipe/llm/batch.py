"""OpenAI Batch API mode: half the price, answers within 24 hours, for large batches.

Inside `LLMClient.batch_api()` a cache miss is not sent: it is collected, and on leaving the block
the collected requests are streamed into JSONL files within the API's limits (`batch_files`),
each uploaded (POST /v1/files, purpose "batch") and submitted (POST /v1/batches). A stage with a
million requests hands `submit_lines` the lines as Arrow batches instead (`bulk`), so nothing is
built per request in Python.

Submission survives a crash: once a file is uploaded its job is recorded (status "submitting",
with every key it carries) in the same transaction, before the batch is created; the record then
takes the batch's id. A run that finds a "submitting" record adopts the batch the server already
made from that file (it lists the batches) or creates it: no request is ever submitted twice, and
the next file is only written once the previous one is recorded.

The next run (a sensor, a schedule, the same command again) polls the open jobs on entry. A
finished job's output file is streamed and parsed a chunk at a time (`batch_output`), each chunk's
answers committed to the cache at the batch price; from then on they are ordinary cache hits. A
line the job reports as failed (its error file) makes its call `failed` in that run, and the next
run submits it again. The requests an expired or cancelled job left without an answer or an error
are not failed: they leave the job's record, so this same run submits them again (and only them).

The collector is handed the pieces of the client it needs (cache, endpoint, a way to reach the
`openai` client, the wire body of a request) rather than the client itself, so this module does
not import `prefpipe.llm.client`: the client depends on it, never the other way round.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefpipe.llm.batch_files import BatchLimits, InputFile, chunks_of_lines, line_array, request_lines, write_files
from prefpipe.llm.batch_output import parse_errors, parse_output
from prefpipe.llm.bulk import CHAT_URL
from prefpipe.llm.cache import LLMCache, now_iso
from prefpipe.llm.request import ChatRequest, Completion

FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})
UNFINISHED_RESUBMIT = frozenset({"expired", "cancelled"})
"""A job that ended so: its requests with no answer and no error are submitted again at once."""
SUBMITTING = "submitting"
_RECORD = "INSERT INTO batch_jobs (job_id, base_url, status, input_file_id, n_requests, submitted_at) VALUES (?, ?, ?, ?, ?, ?)"


class BatchCollector:
    """One run's Batch API bookkeeping: what to submit on exit, and what open jobs answered."""

    def __init__(
        self,
        cache: LLMCache,
        base_url: str,
        *,
        openai: Callable[[], Any],
        wire_body: Callable[[ChatRequest], dict[str, Any]],
        limits: BatchLimits | None = None,
        workdir: Path | None = None,
    ):
        """`openai()` returns the `openai.AsyncOpenAI` of the running event loop; `wire_body`
        turns a request into the body this endpoint wants (as a chat call would send it);
        `workdir` holds the input files until their batch is created (default: beside the cache)."""
        self.cache = cache
        self.base_url = base_url
        self.openai = openai
        self.wire_body = wire_body
        self.limits = limits or BatchLimits()
        self.workdir = workdir or cache.path.parent
        self.deferred: dict[str, ChatRequest] = {}
        self.failed: dict[str, str] = {}
        self.ingested = IngestedKeys()
        """Keys whose answers this run ingested (bought now, not cache hits)."""
        self.resubmitted = 0
        """Requests an expired or cancelled job left unanswered, to be submitted again by this run."""
        self.submitted: list[str] = []
        self.files: list[dict[str, Any]] = []
        """One entry per file this run submitted: path name, requests, bytes, job id."""
        self._pending: set[str] | None = None

    # -- during the run ---------------------------------------------------------------------------
    def defer(self, request: ChatRequest) -> Completion:
        key = request.key
        if key in self.failed:
            return Completion(key=key, model=request.model, status="failed", batch=True, error=self.failed[key], request=request)
        if key not in self.pending_keys:
            self.deferred.setdefault(key, request)
        return Completion(key=key, model=request.model, status="pending", batch=True, request=request)

    @property
    def pending_keys(self) -> set[str]:
        """Keys waiting in open jobs (read once, on first use: a bulk caller never needs the set)."""
        if self._pending is None:
            self._pending = {r[0] for r in self.cache.execute("SELECT key FROM batch_requests")}
        return self._pending

    def open_jobs(self) -> list[str]:
        rows = self.cache.execute("SELECT job_id FROM batch_jobs WHERE closed_at IS NULL AND base_url = ? AND status != ? ORDER BY submitted_at",
                                  (self.base_url, SUBMITTING))
        return [r[0] for r in rows]

    # -- on entry: poll and ingest -----------------------------------------------------------------
    async def poll(self) -> dict[str, str]:
        """Status of every open job of this endpoint; finished ones are ingested and closed."""
        openai = self.openai()
        await self._finish_submissions(openai)
        statuses = {}
        for job_id in self.open_jobs():
            batch = await openai.batches.retrieve(job_id)
            statuses[job_id] = batch.status
            if batch.status not in FINISHED:
                self.cache.execute("UPDATE batch_jobs SET status = ? WHERE job_id = ?", (batch.status, job_id))
                continue
            await self._close(openai, job_id, batch)
        self._pending = None
        return statuses

    async def _close(self, openai: Any, job_id: str, batch: Any) -> None:
        """Ingest a finished job's output and errors, settle the requests left without either."""
        models = dict(self.cache.execute("SELECT key, model FROM batch_requests WHERE job_id = ?", (job_id,)))
        answered: set[str] = set()
        async for chunk in self.stream_lines(openai, batch.output_file_id):
            parsed = parse_output(chunk, models)
            self.cache.put_columns(parsed.rows)
            self.ingested.update(parsed.keys)
            self.failed.update(parsed.failed)
            answered.update(parsed.keys, parsed.failed)
        async for chunk in self.stream_lines(openai, batch.error_file_id):
            errors = parse_errors(chunk, models)
            self.failed.update(errors)
            answered.update(errors)
        left = [k for k in models if k not in answered]
        if batch.status in UNFINISHED_RESUBMIT:
            self.resubmitted += len(left)  # not failed: deleted from the job below, so this run submits them again
        else:
            why = f"Batch API job {job_id} ended {batch.status} without an answer for this request" + _job_errors(batch)
            self.failed.update(dict.fromkeys(left, why))
        self.cache.execute_all([
            ("DELETE FROM batch_requests WHERE job_id = ?", [(job_id,)]),
            ("UPDATE batch_jobs SET status = ?, output_file_id = ?, error_file_id = ?, closed_at = ?, note = ? WHERE job_id = ?",
             [(batch.status, batch.output_file_id, batch.error_file_id, now_iso(), f"{len(left)} request(s) without an answer" if left else None, job_id)]),
        ])

    async def stream_lines(self, openai: Any, file_id: str | None) -> AsyncIterator[pa.LargeStringArray]:
        """A file's lines, streamed and cut into chunks of about READ_CHUNK_BYTES: however large the
        file, at most two chunks of it are in memory."""
        if not file_id:
            return
        async with openai.files.with_streaming_response.content(file_id) as response:
            async for chunk in chunks_of_lines(response):
                yield line_array(chunk)

    # -- on exit: submit ---------------------------------------------------------------------------
    async def submit(self) -> list[str]:
        """Upload the collected requests and create the batch job(s); returns the new job ids."""
        if self.deferred:
            await self.submit_lines(request_lines(list(self.deferred.values()), self.wire_body))
            self.deferred.clear()
        return self.submitted

    async def submit_lines(self, batches: Iterable[pa.RecordBatch]) -> list[str]:
        """Submit request lines (batch_files.LINE_SCHEMA batches, keys not pending anywhere):
        one file at a time, each recorded before the next is written."""
        openai = self.openai()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="prefpipe-batch-", dir=self.workdir) as folder:
            for file in write_files(batches, Path(folder), self.limits):
                await self._submit_file(openai, file)
                file.path.unlink()
        self._pending = None
        return self.submitted

    async def _submit_file(self, openai: Any, file: InputFile) -> None:
        uploaded = await openai.files.create(file=(file.path.name, file.path.read_bytes(), "application/jsonl"), purpose="batch")
        marker = f"{SUBMITTING}:{uploaded.id}"
        self.cache.execute_all([
            (_RECORD, [(marker, self.base_url, SUBMITTING, uploaded.id, len(file.keys), now_iso())]),
            ("INSERT OR REPLACE INTO batch_requests (key, job_id, model) VALUES (?, ?, ?)", zip(file.keys, [marker] * len(file.keys), file.models)),
        ])
        job = await self._create(openai, uploaded.id)
        self._adopt(marker, job)
        self.files.append({"file": file.path.name, "requests": len(file.keys), "bytes": file.n_bytes, "job_id": job.id})

    async def _create(self, openai: Any, input_file_id: str) -> Any:
        return await openai.batches.create(input_file_id=input_file_id, endpoint=CHAT_URL, completion_window="24h")

    def _adopt(self, marker: str, job: Any) -> None:
        """The recorded file's batch exists: the record takes its id."""
        self.cache.execute_all([
            ("UPDATE batch_jobs SET job_id = ?, status = ? WHERE job_id = ?", [(job.id, job.status, marker)]),
            ("UPDATE batch_requests SET job_id = ? WHERE job_id = ?", [(job.id, marker)]),
        ])
        self.submitted.append(job.id)

    async def _finish_submissions(self, openai: Any) -> None:
        """Files recorded by a run that stopped before their batch was recorded: adopt the batch the
        server made from the file, or create it now."""
        rows = self.cache.execute("SELECT job_id, input_file_id FROM batch_jobs WHERE status = ? AND base_url = ?", (SUBMITTING, self.base_url))
        if not rows:
            return
        made = {b.input_file_id: b async for b in openai.batches.list(limit=100)}
        for marker, file_id in rows:
            self._adopt(marker, made.get(file_id) or await self._create(openai, file_id))


class IngestedKeys:
    """Keys ingested by this run, kept as the lists they came in; a set is built only when a
    caller asks about one key (the per-request path), an Arrow array for the bulk path."""

    def __init__(self) -> None:
        self._chunks: list[list[str]] = []
        self._set: set[str] | None = None

    def update(self, keys: list[str]) -> None:
        self._chunks.append(keys)
        self._set = None

    def __contains__(self, key: object) -> bool:
        if self._set is None:
            self._set = {k for chunk in self._chunks for k in chunk}
        return key in self._set

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)

    def array(self) -> pa.ChunkedArray:
        return pa.chunked_array([pa.array(c, pa.string()) for c in self._chunks], pa.string())


def _job_errors(batch: Any) -> str:
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    return ": " + "; ".join(str(getattr(e, "message", e)) for e in errors)[:300] if errors else ""
