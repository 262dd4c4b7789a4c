"""The scripted server's emulation of OpenAI's Files and Batch APIs.

Enough of them for `prefpipe.llm.batch` to run for real: upload a JSONL file (POST /v1/files),
read it back (GET /v1/files/{id}[/content]), create a batch from it (POST /v1/batches) and poll it
(GET /v1/batches/{id}) until it completes and names its output and error files. Every line is
answered when the batch is created, by the server's `answer` callback (scripted rules, faults and
responder alike); the batch then reports in_progress for `ServerState.batch_polls` polls.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from prefpipe.testing.asgi import send_error, send_json, send_raw
from prefpipe.testing.replies import Reply, ServerState, completion_body

LineAnswer = Callable[[dict[str, Any]], Reply | None]
"""A batch line's chat request -> its reply, or None when the line is to fail."""


class BatchApi:
    """Uploaded files and created batches, held in memory for the life of the server."""

    def __init__(self, answer: LineAnswer, state: ServerState, counts: Counter[str]):
        self.answer = answer
        self.state = state
        self.counts = counts
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}

    async def handle(self, method: str, path: str, raw: bytes, headers: dict[str, str], send: Any) -> bool:
        """Answer a Files or Batches request; False when `path` is not one of theirs."""
        if method == "POST" and path == "/v1/files":
            await self._upload(raw, headers.get("content-type", ""), send)
        elif method == "GET" and path.startswith("/v1/files/"):
            await self._file(path, send)
        elif method == "POST" and path == "/v1/batches":
            await self._create_batch(raw, send)
        elif method == "GET" and path.startswith("/v1/batches/"):
            await self._retrieve_batch(path.rsplit("/", 1)[1], send)
        else:
            return False
        return True

    async def _upload(self, raw: bytes, content_type: str, send: Any) -> None:
        parts = _multipart(raw, content_type)
        if "file" not in parts:
            await send_error(send, 400, "multipart field 'file' is required", "invalid_request_error")
            return
        file_id = "file-" + hashlib.sha1(parts["file"] + str(len(self.files)).encode()).hexdigest()[:24]
        purpose = parts.get("purpose", b"batch").decode()
        self.files[file_id] = {"bytes": parts["file"], "purpose": purpose}
        self.counts["/v1/files"] += 1
        await send_json(send, 200, _file_object(file_id, len(parts["file"]), purpose))

    async def _file(self, path: str, send: Any) -> None:
        pieces = path.split("/")  # ['', 'v1', 'files', id, ('content')]
        file = self.files.get(pieces[3])
        if file is None:
            await send_error(send, 404, f"no file {pieces[3]}", "not_found")
        elif len(pieces) > 4 and pieces[4] == "content":
            await send_raw(send, 200, file["bytes"], b"application/octet-stream")
        else:
            await send_json(send, 200, _file_object(pieces[3], len(file["bytes"]), file["purpose"]))

    async def _create_batch(self, raw: bytes, send: Any) -> None:
        body = json.loads(raw)
        source = self.files.get(body.get("input_file_id", ""))
        if source is None:
            await send_error(send, 400, "input_file_id not found", "invalid_request_error")
            return
        batch_id = "batch_" + hashlib.sha1(f"{body['input_file_id']}{len(self.batches)}".encode()).hexdigest()[:24]
        ok_lines, error_lines = [], []
        for n, line in enumerate(source["bytes"].decode().splitlines()):
            if not line.strip():
                continue
            item = json.loads(line)
            request = item["body"]
            reply = self.answer(request)
            if reply is None:
                error_lines.append({"id": f"batch_req_{n}", "custom_id": item["custom_id"], "response": {"status_code": 500, "body": {"error": {"message": "scripted batch line failure", "type": "server_error"}}}, "error": None})
                continue
            ok_lines.append({"id": f"batch_req_{n}", "custom_id": item["custom_id"], "response": {"status_code": 200, "request_id": f"req_{n}", "body": completion_body(request, reply)}, "error": None})
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "created_at": int(time.time()),
            "status": "validating",
            "request_counts": {"total": len(ok_lines) + len(error_lines), "completed": len(ok_lines), "failed": len(error_lines)},
            "_output": self._output_file(f"file-out-{batch_id}", ok_lines),
            "_error": self._output_file(f"file-err-{batch_id}", error_lines),
            "_polls": 0,
        }
        self.counts["/v1/batches"] += 1
        await send_json(send, 200, _public(self.batches[batch_id]))

    def _output_file(self, file_id: str, lines: list[dict[str, Any]]) -> str | None:
        """Store `lines` as a JSONL batch output file; None (no file) when there are none."""
        if not lines:
            return None
        self.files[file_id] = {"bytes": "\n".join(json.dumps(x) for x in lines).encode() + b"\n", "purpose": "batch_output"}
        return file_id

    async def _retrieve_batch(self, batch_id: str, send: Any) -> None:
        batch = self.batches.get(batch_id)
        if batch is None:
            await send_error(send, 404, f"no batch {batch_id}", "not_found")
            return
        batch["_polls"] += 1
        if batch["_polls"] > self.state.batch_polls:
            batch.update(status="completed", output_file_id=batch["_output"], error_file_id=batch["_error"], completed_at=int(time.time()))
        else:
            batch["status"] = "in_progress"
        await send_json(send, 200, _public(batch))


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _file_object(file_id: str, size: int, purpose: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()), "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed"}


def _multipart(raw: bytes, content_type: str) -> dict[str, bytes]:
    """Fields of a multipart/form-data body, parsed by the standard library's email parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + raw
    )
    out = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = part.get_payload(decode=True) or b""
    return out
