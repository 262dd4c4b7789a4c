"""OpenAI Batch API mode: half the price, answers within 24 hours, for large batches.

Inside `LLMClient.batch_api()` a cache miss is not sent: it is collected, and on leaving the block
the collected requests are written as one JSONL file (custom_id = cache key), uploaded
(POST /v1/files, purpose "batch") and submitted (POST /v1/batches). The job and the keys it
carries are recorded in the cache database, so the next run (a sensor, a schedule, the same
command again) does not submit them twice: it polls the open jobs on entry, and a finished job's
output file is downloaded and every answer stored in the cache, marked as bought at the batch
price. From then on the answers are ordinary cache hits. A line the job reports as failed makes
its call `failed` in that run (and is submitted again by the next one).

The collector is handed the pieces of the client it needs (cache, endpoint, a way to reach the
`openai` client, the wire body of a request) rather than the client itself, so this module does
not import `prefpipe.llm.client`: the client depends on it, never the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prefpipe.llm.cache import LLMCache, now_iso
from prefpipe.llm.request import (
    ChatRequest,
    Completion,
    MalformedResponse,
    completion_fields,
)

MAX_REQUESTS_PER_JOB = 50_000  # OpenAI's limit per batch file
FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchCollector:
    """One run's Batch API bookkeeping: what to submit on exit, and what open jobs answered."""

    def __init__(
        self,
        cache: LLMCache,
        base_url: str,
        *,
        openai: Callable[[], Any],
        wire_body: Callable[[ChatRequest], dict[str, Any]],
    ):
        """`openai()` returns the `openai.AsyncOpenAI` of the running event loop; `wire_body`
        turns a request into the body this endpoint wants (as a chat call would send it)."""
        self.cache = cache
        self.base_url = base_url
        self.openai = openai
        self.wire_body = wire_body
        self.deferred: dict[str, ChatRequest] = {}
        self.failed: dict[str, str] = {}
        self.ingested: set[str] = set()
        self.submitted: list[str] = []
        self.pending_keys: set[str] = set()

    # -- during the run ---------------------------------------------------------------------------
    def defer(self, request: ChatRequest) -> Completion:
        key = request.key
        if key in self.failed:
            return Completion(key=key, model=request.model, status="failed", batch=True, error=self.failed[key], request=request)
        if key not in self.pending_keys:
            self.deferred.setdefault(key, request)
        return Completion(key=key, model=request.model, status="pending", batch=True, request=request)

    def open_jobs(self) -> list[str]:
        rows = self.cache.execute("SELECT job_id FROM batch_jobs WHERE closed_at IS NULL AND base_url = ? ORDER BY submitted_at", (self.base_url,))
        return [r[0] for r in rows]

    # -- on entry: poll and ingest -----------------------------------------------------------------
    async def poll(self) -> dict[str, str]:
        """Status of every open job of this endpoint; finished ones are ingested and closed."""
        openai = self.openai()
        statuses = {}
        for job_id in self.open_jobs():
            batch = await openai.batches.retrieve(job_id)
            statuses[job_id] = batch.status
            if batch.status not in FINISHED:
                self.cache.execute("UPDATE batch_jobs SET status = ? WHERE job_id = ?", (batch.status, job_id))
                continue
            models = dict(self.cache.execute("SELECT key, model FROM batch_requests WHERE job_id = ?", (job_id,)))
            stored = await self._ingest_output(openai, batch.output_file_id, models)
            errors = await self._ingest_errors(openai, batch.error_file_id, models)
            for key in models.keys() - stored - errors:
                self.failed[key] = f"Batch API job {job_id} ended {batch.status} without an answer for this request"
            self.cache.execute("DELETE FROM batch_requests WHERE job_id = ?", (job_id,))
            self.cache.execute(
                "UPDATE batch_jobs SET status = ?, output_file_id = ?, error_file_id = ?, closed_at = ? WHERE job_id = ?",
                (batch.status, batch.output_file_id, batch.error_file_id, now_iso(), job_id),
            )
        self.pending_keys = {r[0] for r in self.cache.execute("SELECT key FROM batch_requests")}
        return statuses

    async def _lines(self, openai: Any, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        content = await openai.files.content(file_id)
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]

    async def _ingest_output(self, openai: Any, file_id: str | None, models: dict[str, str]) -> set[str]:
        rows, done = [], set()
        for line in await self._lines(openai, file_id):
            key = line.get("custom_id")
            response = line.get("response") or {}
            if key not in models:
                continue
            if response.get("status_code") != 200:
                self.failed[key] = f"Batch API line failed: HTTP {response.get('status_code')}: {json.dumps(response.get('body'))[:300]}"
                done.add(key)
                continue
            try:
                answer = Completion(key=key, model=models[key], status="ok", batch=True, **completion_fields(response["body"]))
            except MalformedResponse as exc:
                self.failed[key] = f"Batch API line malformed: {exc}"
                done.add(key)
                continue
            rows.append((key, models[key], answer.stored()))
            done.add(key)
        self.cache.put_many(rows)
        self.ingested.update(key for key, _, _ in rows)
        return done

    async def _ingest_errors(self, openai: Any, file_id: str | None, models: dict[str, str]) -> set[str]:
        keys = set()
        for line in await self._lines(openai, file_id):
            key = line.get("custom_id")
            if key in models:
                detail = line.get("error") or (line.get("response") or {}).get("body")
                self.failed[key] = f"Batch API line failed: {json.dumps(detail)[:300]}"
                keys.add(key)
        return keys

    # -- on exit: submit ---------------------------------------------------------------------------
    async def submit(self) -> list[str]:
        """Upload the collected requests and create the batch job(s); returns the new job ids."""
        if not self.deferred:
            return []
        openai = self.openai()
        requests = list(self.deferred.values())
        for start in range(0, len(requests), MAX_REQUESTS_PER_JOB):
            chunk = requests[start : start + MAX_REQUESTS_PER_JOB]
            payload = "".join(
                json.dumps({"custom_id": r.key, "method": "POST", "url": "/v1/chat/completions", "body": self.wire_body(r)}, ensure_ascii=False) + "\n"
                for r in chunk
            ).encode("utf-8")
            uploaded = await openai.files.create(file=("prefpipe-requests.jsonl", payload, "application/jsonl"), purpose="batch")
            job = await openai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
            self.cache.execute(
                "INSERT INTO batch_jobs (job_id, base_url, status, input_file_id, n_requests, submitted_at) VALUES (?, ?, ?, ?, ?, ?)",
                (job.id, self.base_url, job.status, uploaded.id, len(chunk), now_iso()),
            )
            self.cache.executemany(
                "INSERT OR REPLACE INTO batch_requests (key, job_id, model) VALUES (?, ?, ?)",
                [(r.key, job.id, r.model) for r in chunk],
            )
            self.submitted.append(job.id)
            self.pending_keys.update(r.key for r in chunk)
        self.deferred.clear()
        return self.submitted
