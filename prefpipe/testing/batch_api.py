"""The scripted server's emulation of OpenAI's Files and Batch APIs, at the API's own sizes.

Enough of them for `prefpipe.llm.batch` to run for real: upload a JSONL file (POST /v1/files,
multipart, streamed to disk as it arrives), read it back (GET /v1/files/{id}[/content], streamed
from disk), create a batch from it (POST /v1/batches), list batches (GET /v1/batches, paginated)
and poll one (GET /v1/batches/{id}) until it ends and names its output and error files. Files
live in a temporary folder for the life of the server, never in memory, so 2 million requests
in 40 files of 200 MB cost the server disk, not RAM.

A batch is answered when a poll finds it due (after `ServerState.batch_polls` polls that say
in_progress), on a worker thread so the server keeps serving: each line is read, answered by the
server's `answer` callback (scripted rules, faults and responder alike) and written, one line at a
time. `script(BatchOutcome(...))` makes the next batch created end otherwise: "expired" after
answering its first `answered` lines (the rest get nothing, as OpenAI's expiry leaves them), or
"failed" as a whole. A line failed by a fault goes to the error file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from prefpipe.testing.asgi import send_error, send_json, stream_body
from prefpipe.testing.replies import Reply, ServerState, completion_body

LineAnswer = Callable[[dict[str, Any], bytes], Reply | None]
"""A batch line's chat request and digest -> its reply, or None when the line is to fail."""
CHUNK = 2**20


@dataclass
class BatchOutcome:
    """How the next batch created ends (scripted): completed, expired after `answered` lines, or failed."""

    status: Literal["completed", "expired", "failed"] = "completed"
    answered: int | None = None
    """For "expired": how many of its first lines get a line in the output or error file."""


@dataclass
class StoredFile:
    path: Path
    purpose: str
    size: int


class BatchApi:
    """Uploaded files and created batches: files on disk, batches as small records."""

    def __init__(self, answer: LineAnswer, state: ServerState, counts: Counter[str]):
        self.answer = answer
        self.state = state
        self.counts = counts
        self.folder = Path(tempfile.mkdtemp(prefix="prefpipe-scripted-batch-"))
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.outcomes: list[BatchOutcome] = []
        self.create_failures = 0
        """Batch creations to refuse with a 500 (a crash between two creations, for tests)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- for tests -----------------------------------------------------------------------------
    def script(self, *outcomes: BatchOutcome) -> None:
        """The next batches created end as these outcomes, in turn (then: completed)."""
        self.outcomes.extend(outcomes)

    def content(self, file_id: str) -> bytes:
        return self.files[file_id].path.read_bytes()

    def uploads(self) -> list[str]:
        """Ids of the files uploaded for batches, in order."""
        return [fid for fid, f in self.files.items() if f.purpose == "batch"]

    # -- routing ------------------------------------------------------------------------------
    async def handle(self, method: str, path: str, raw: bytes, headers: dict[str, str], send: Any, query: str = "", receive: Any = None) -> bool:
        """Answer a Files or Batches request (uploads go to `upload`); False when not theirs."""
        if method == "GET" and path.startswith("/v1/files/"):
            await self._file(path, send, receive)
        elif method == "POST" and path == "/v1/batches":
            await self._create_batch(raw, send)
        elif method == "GET" and path == "/v1/batches":
            await self._list_batches(query, send)
        elif method == "GET" and path.startswith("/v1/batches/"):
            await self._retrieve_batch(path.rsplit("/", 1)[1], send)
        else:
            return False
        return True

    async def upload(self, headers: dict[str, str], receive: Any, send: Any) -> None:
        """POST /v1/files: the multipart body streamed to disk as it arrives."""
        content_type = headers.get("content-type", "")
        boundary = next((p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().startswith("boundary=")), None)
        if not content_type.startswith("multipart/form-data") or not boundary:
            await send_error(send, 400, "a multipart/form-data body is required", "invalid_request_error")
            return
        n = len(self.files)
        target = self.folder / f"upload-{n}.jsonl"
        fields, size, digest = await _receive_multipart(receive, boundary.encode("latin-1"), target)
        if "file" not in fields:
            target.unlink(missing_ok=True)
            await send_error(send, 400, "multipart field 'file' is required", "invalid_request_error")
            return
        file_id = "file-" + hashlib.sha1(digest + str(n).encode()).hexdigest()[:24]
        purpose = fields.get("purpose", b"batch").decode()
        self.files[file_id] = StoredFile(target, purpose, size)
        self.counts["/v1/files"] += 1
        self.counts["upload_bytes"] += size
        await send_json(send, 200, _file_object(file_id, size, purpose))

    async def _file(self, path: str, send: Any, receive: Any) -> None:
        pieces = path.split("/")  # ['', 'v1', 'files', id, ('content')]
        file = self.files.get(pieces[3])
        if file is None:
            await send_error(send, 404, f"no file {pieces[3]}", "not_found")
        elif len(pieces) > 4 and pieces[4] == "content":
            self.counts["download_bytes"] += await stream_body(send, receive, 200, _read_chunks(file.path))
        else:
            await send_json(send, 200, _file_object(pieces[3], file.size, file.purpose))

    # -- batches -------------------------------------------------------------------------------
    async def _create_batch(self, raw: bytes, send: Any) -> None:
        body = json.loads(raw)
        source = self.files.get(body.get("input_file_id", ""))
        if source is None:
            await send_error(send, 400, "input_file_id not found", "invalid_request_error")
            return
        if self.create_failures:
            self.create_failures -= 1
            await send_error(send, 500, "batch creation failed (scripted)", "server_error")
            return
        batch_id = "batch_" + hashlib.sha1(f"{body['input_file_id']}{len(self.batches)}".encode()).hexdigest()[:24]
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
            "created_at": int(time.time()), "status": "validating", "output_file_id": None, "error_file_id": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
            "_outcome": self.outcomes.pop(0) if self.outcomes else BatchOutcome(), "_polls": 0, "_done": None,
        }
        self.counts["/v1/batches"] += 1
        await send_json(send, 200, _public(self.batches[batch_id]))

    async def _list_batches(self, query: str, send: Any) -> None:
        """GET /v1/batches: newest first, `limit` a page, `after` the last id of the previous page."""
        args = {k: v[0] for k, v in parse_qs(query).items()}
        ids = list(reversed(self.batches))
        if "after" in args and args["after"] in ids:
            ids = ids[ids.index(args["after"]) + 1 :]
        limit = int(args.get("limit", 20))
        page = [_public(self.batches[i]) for i in ids[:limit]]
        await send_json(send, 200, {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                                    "last_id": page[-1]["id"] if page else None, "has_more": len(ids) > limit})

    async def _retrieve_batch(self, batch_id: str, send: Any) -> None:
        batch = self.batches.get(batch_id)
        if batch is None:
            await send_error(send, 404, f"no batch {batch_id}", "not_found")
            return
        batch["_polls"] += 1
        if batch["_polls"] > self.state.batch_polls and batch["status"] in ("validating", "in_progress"):
            await asyncio.to_thread(self._finish, batch)
        elif batch["status"] == "validating":
            batch["status"] = "in_progress"
        await send_json(send, 200, _public(batch))

    def _finish(self, batch: dict[str, Any]) -> None:
        """Answer the batch's lines (once, whichever poll gets here first) and end it."""
        with self._lock:
            if batch["status"] not in ("validating", "in_progress"):
                return
            outcome: BatchOutcome = batch["_outcome"]
            if outcome.status == "failed":
                batch.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": [{"code": "scripted", "message": "the batch failed (scripted)", "line": None}]})
                return
            limit = outcome.answered if outcome.status == "expired" else None
            out_path, err_path = self.folder / f"out-{batch['id']}.jsonl", self.folder / f"err-{batch['id']}.jsonl"
            ok = failed = 0
            with out_path.open("wb") as out, err_path.open("wb") as err:
                for n, raw in enumerate(_lines(self.files[batch["input_file_id"]].path)):
                    if limit is not None and n >= limit:
                        break
                    item = json.loads(raw)
                    request = item["body"]
                    reply = self.answer(request, hashlib.sha1(raw).digest())
                    self.counts["batch_lines"] += 1
                    if reply is None:
                        failed += 1
                        err.write(_dump({"id": f"batch_req_{n}", "custom_id": item["custom_id"], "response": {"status_code": 500, "body": {"error": {"message": "scripted batch line failure", "type": "server_error"}}}, "error": None}))
                    else:
                        ok += 1
                        out.write(_dump({"id": f"batch_req_{n}", "custom_id": item["custom_id"], "response": {"status_code": 200, "request_id": f"req_{n}", "body": completion_body(request, reply)}, "error": None}))
            total = sum(1 for _ in _lines(self.files[batch["input_file_id"]].path)) if limit is not None else ok + failed
            batch.update(
                status=outcome.status, request_counts={"total": total, "completed": ok, "failed": failed},
                output_file_id=self._keep(f"file-out-{batch['id']}", out_path, ok), error_file_id=self._keep(f"file-err-{batch['id']}", err_path, failed),
                **{("expired_at" if outcome.status == "expired" else "completed_at"): int(time.time())},
            )

    def _keep(self, file_id: str, path: Path, lines: int) -> str | None:
        """Register a written output file; None (no file, as OpenAI does) when it has no line."""
        if not lines:
            path.unlink(missing_ok=True)
            return None
        self.files[file_id] = StoredFile(path, "batch_output", path.stat().st_size)
        return file_id


def _dump(line: dict[str, Any]) -> bytes:
    return json.dumps(line).encode() + b"\n"


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                yield raw


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while piece := f.read(CHUNK):
            yield piece


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _file_object(file_id: str, size: int, purpose: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()), "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed"}


async def _receive_multipart(receive: Any, boundary: bytes, target: Path) -> tuple[dict[str, bytes], int, bytes]:
    """Read a multipart/form-data body as it arrives: the field "file" is written to `target`,
    the others kept (they are small). Returns the fields (file: b""), the file's size and a hash of it."""
    delimiter = b"\r\n--" + boundary
    buffer = bytearray(b"\r\n")  # the first delimiter has no line break before it
    fields: dict[str, bytes] = {}
    name: str | None = None
    size, digest = 0, hashlib.sha1()
    with target.open("wb") as out:

        def emit(data: bytes | bytearray) -> None:
            nonlocal size
            if name == "file":
                out.write(data)
                digest.update(data)
                size += len(data)
            elif name is not None:
                fields[name] = fields.get(name, b"") + bytes(data)

        more, state = True, "preamble"
        while more or buffer:
            if more:
                message = await receive()
                buffer += message.get("body", b"")
                more = bool(message.get("more_body"))
            while True:
                if state in ("preamble", "part"):
                    at = buffer.find(delimiter)
                    if at < 0:
                        keep = len(delimiter)
                        if len(buffer) > keep:
                            if state == "part":
                                emit(buffer[:-keep])
                            del buffer[:-keep]
                        break
                    if state == "part":
                        emit(buffer[:at])
                    del buffer[: at + len(delimiter)]
                    state, name = "headers", None
                if len(buffer) >= 2 and buffer[:2] == b"--":
                    return fields, size, digest.digest()
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                headers = buffer[:end].decode("latin-1")
                found = [p.split("=", 1)[1].strip('"') for line in headers.split("\r\n") if line.lower().startswith("content-disposition") for p in line.split(";") if p.strip().startswith("name=")]
                name = found[0] if found else None
                fields.setdefault(name or "", b"")
                del buffer[: end + 4]
                state = "part"
            if not more:
                break
    return fields, size, digest.digest()
