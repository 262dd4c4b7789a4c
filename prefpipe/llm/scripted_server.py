"""A real OpenAI-compatible HTTP server on loopback with scripted answers and injected faults.

Tests and the judge benchmark talk to it through the real `openai` client, so every retry, timeout,
cache and parsing path runs for real. It speaks:

- POST /v1/chat/completions, with `logprobs` / `top_logprobs` and `usage`;
- POST /v1/files, GET /v1/files/{id}[/content], POST /v1/batches, GET /v1/batches/{id}: enough of
  the Batch API to upload a JSONL file, create a batch, poll it and download its output;
- GET /_stats, POST /_reset, POST /_config: counters and settings for a benchmark in another process.

Answers come from scripted rules (`on(substring, *actions)`, consumed in order) and otherwise from
`default_responder`, which plays a judge (reads <response_a>/<response_b>, answers `VERDICT: X`), a
pointwise scorer (`SCORE: N`) or a generator (distinct text per sample at temperature > 0). A
response's "quality" is the `[[q=0.7]]` marker in it, or a stable hash, so verdicts do not depend
on the order the responses are shown in unless `position_bias` says so.

Faults: `Fault("429", retry_after=0.2)`, "400" (not worth retrying), "500", "timeout" (stall past the client's timeout),
"truncated" (finish_reason "length", verdict cut off), "malformed" (200 with a non-completion
body), "cut" (the HTTP body stops halfway). `FaultRates` injects them at random, deterministically
by request hash, on first attempts only: a retry of the same request is answered normally.

Run alone: `python -m prefpipe.llm.scripted_server --latency 0.1 --rate-429 0.05` prints
`LISTENING http://127.0.0.1:PORT/v1` and serves until interrupted. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import hashlib
import json
import math
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

VERDICTS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+")
QUALITY_RE = re.compile(r"\[\[q=([0-9.]+)\]\]")
WORDS = (
    "the answer depends on context and careful reading of the question shows that a simple rule "
    "applies here first consider the inputs then check each case the result follows directly from "
    "definitions we can verify this by example note that edge cases matter in practice so test them "
    "this approach is correct efficient clear and safe although other methods exist they are slower"
).split()


@dataclass
class Reply:
    """A scripted answer. `certainty` is the probability the logprobs give the verdict/score."""

    text: str
    finish_reason: str = "stop"
    certainty: float = 0.9


@dataclass
class Fault:
    kind: Literal["400", "429", "500", "timeout", "truncated", "malformed", "cut"]
    retry_after: float | None = None
    delay: float = 3.0
    """For "timeout": how long the server stalls before answering (beyond the client's timeout)."""


Action = Reply | Fault | str


@dataclass
class FaultRates:
    """Fractions of first attempts answered with each fault (deterministic by request hash)."""

    rate_429: float = 0.0
    retry_after: float | None = 0.2
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    timeout_delay: float = 3.0
    rate_truncated: float = 0.0
    rate_malformed: float = 0.0
    rate_cut: float = 0.0
    seed: int = 0

    def pick(self, digest: bytes) -> Fault | None:
        u = int.from_bytes(hashlib.sha256(digest + str(self.seed).encode()).digest()[:8], "big") / 2**64
        for kind, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("timeout", self.rate_timeout),
            ("truncated", self.rate_truncated),
            ("malformed", self.rate_malformed),
            ("cut", self.rate_cut),
        ):
            if u < rate:
                return Fault(kind, retry_after=self.retry_after if kind == "429" else None, delay=self.timeout_delay)  # type: ignore[arg-type]
            u -= rate
        return None


@dataclass
class Rule:
    contains: str
    actions: list[Action]
    repeat: bool = False
    used: int = 0

    def next_action(self) -> Action | None:
        if self.used < len(self.actions):
            action = self.actions[self.used]
        elif self.repeat and self.actions:
            action = self.actions[-1]
        else:
            return None
        self.used += 1
        return action


@dataclass
class Seen:
    """What the server received (tests assert on it)."""

    path: str
    body: dict[str, Any]
    status: int
    at: float


@dataclass
class ServerState:
    latency: float = 0.0
    faults: FaultRates = field(default_factory=FaultRates)
    position_bias: float = 0.0
    batch_polls: int = 1
    """Polls of a batch that still say in_progress before it completes."""
    keep_bodies: bool = True


Responder = Callable[[dict[str, Any], int, "ServerState"], Reply]


# -- the default responder ---------------------------------------------------------------------
def quality(text: str) -> float:
    """A response's hidden quality in [0, 1): its [[q=X]] marker, else a stable hash."""
    marker = QUALITY_RE.search(text)
    if marker:
        return min(1.0, float(marker.group(1)))
    return int.from_bytes(hashlib.sha256(text.strip().encode()).digest()[:4], "big") / 2**32


def _between(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.S)
    return None if match is None else match.group(1)


def default_responder(body: dict[str, Any], variant: int, state: ServerState) -> Reply:
    messages = body.get("messages") or []
    everything = "\n".join(str(m.get("content", "")) for m in messages)
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    instructions = system or everything
    if "VERDICT:" in instructions:
        first, second = _between(everything, "response_a"), _between(everything, "response_b")
        if first is None or second is None:
            return Reply("I cannot compare these responses.", certainty=0.5)
        diff = quality(first) - quality(second) + state.position_bias
        verdict = "A>>B" if diff > 0.3 else "A>B" if diff > 0.05 else "A=B" if diff >= -0.05 else "B>A" if diff >= -0.3 else "B>>A"
        certainty = 0.55 + 0.4 * min(1.0, abs(diff) / 0.5)
        return Reply(f"Response A is worth {quality(first):.2f} and response B {quality(second):.2f} under the rubric.\nVERDICT: {verdict}", certainty=certainty)
    if "SCORE:" in instructions:
        response = _between(everything, "response")
        if response is None:
            return Reply("There is no response to score.", certainty=0.5)
        score = 1 + round(9 * quality(response))
        return Reply(f"Judged against the rubric.\nSCORE: {score}", certainty=0.8)
    prompt = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    temperature = float(body.get("temperature", 1.0))
    seed = body.get("seed")
    sample = 0 if temperature == 0 else int(seed) if seed is not None else variant
    digest = hashlib.sha256(f"{body.get('model')}|{prompt}|{temperature}|{sample}".encode()).digest()
    words = [WORDS[b % len(WORDS)] for b in digest[:24]]
    q = digest[24] / 256
    return Reply(f"{' '.join(words).capitalize()}. [[q={q:.2f}]]", certainty=0.9)


# -- answers as JSON ------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def completion_body(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    text, finish = reply.text, reply.finish_reason
    tokens = tokenize(text)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if limit and len(tokens) > int(limit):
        tokens, finish = tokens[: int(limit)], "length"
        text = "".join(tokens)
    prompt_tokens = sum(len(tokenize(str(m.get("content", "")))) for m in body.get("messages") or [])
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if body.get("logprobs"):
        choice["logprobs"] = {"content": _logprobs(tokens, reply.certainty, int(body.get("top_logprobs") or 0))}
    return {
        "id": "chatcmpl-" + hashlib.sha1(text.encode()).hexdigest()[:20],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens), "total_tokens": prompt_tokens + len(tokens)},
    }


def _logprobs(tokens: list[str], certainty: float, top: int) -> list[dict[str, Any]]:
    """Near-certain tokens, except the verdict/score value, whose tokens share log(certainty)."""
    text = "".join(tokens)
    value = re.search(r"(?:VERDICT|SCORE):\s*(\S+)\s*$", text)
    spans, start = [], 0
    for tok in tokens:
        spans.append((start, start + len(tok)))
        start += len(tok)
    inside = [value is not None and s < value.end(1) and e > value.start(1) and tok.strip() != "" for tok, (s, e) in zip(tokens, spans)]
    n_value = max(1, sum(inside))
    out = []
    for tok, is_value in zip(tokens, inside):
        lp = math.log(max(certainty, 1e-9)) / n_value if is_value else math.log(0.995)
        entry: dict[str, Any] = {"token": tok, "logprob": lp, "bytes": list(tok.encode())}
        if top:
            rest = math.log(max(1e-9, 1 - math.exp(lp)))
            entry["top_logprobs"] = [
                {"token": tok, "logprob": lp, "bytes": list(tok.encode())},
                {"token": " other", "logprob": rest, "bytes": list(b" other")},
            ][:top]
        out.append(entry)
    return out


# -- the ASGI app -----------------------------------------------------------------------------------
class ScriptedServer:
    """Start with `with ScriptedServer(...) as server:` (a thread) or run the module (a process)."""

    def __init__(
        self,
        *,
        responder: Responder = default_responder,
        latency: float = 0.0,
        faults: FaultRates | None = None,
        position_bias: float = 0.0,
        batch_polls: int = 1,
        keep_bodies: bool = True,
        port: int = 0,
    ):
        self.responder = responder
        self.state = ServerState(latency, faults or FaultRates(), position_bias, batch_polls, keep_bodies)
        self.rules: list[Rule] = []
        self.port = port
        self.received: list[Seen] = []
        self.counts: Counter[str] = Counter()
        self._seen: Counter[bytes] = Counter()
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        """Chat requests received and not yet answered (a client may have gone away meanwhile)."""
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._socket: socket.socket | None = None

    # -- scripting -------------------------------------------------------------------------
    def on(self, contains: str, *actions: Action, repeat: bool = False) -> Rule:
        """Requests whose messages contain `contains` get `actions` in turn, then the default
        (or the last action forever with repeat=True)."""
        rule = Rule(contains, list(actions), repeat)
        self.rules.append(rule)
        return rule

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every request received has been answered (or `timeout` seconds pass)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def reset(self) -> None:
        self.received.clear()
        self.counts.clear()
        self._seen.clear()

    @property
    def chat_requests(self) -> list[Seen]:
        return [s for s in self.received if s.path == "/v1/chat/completions"]

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        self._socket = sock
        return sock

    def _uvicorn(self) -> Any:
        import uvicorn

        config = uvicorn.Config(self, log_level="critical", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        return self._server

    def start(self) -> "ScriptedServer":
        sock = self._bind()
        server = self._uvicorn()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="scripted-llm", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def serve_forever(self) -> None:
        """Serve in this (main) thread until SIGINT/SIGTERM."""
        sock = self._bind()
        print(f"LISTENING {self.base_url}", flush=True)
        self._uvicorn().run(sockets=[sock])

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if method == "POST" and path == "/v1/chat/completions":
            self.in_flight += 1
            try:
                await self._chat(raw, send)
            finally:
                self.in_flight -= 1
        elif method == "POST" and path == "/v1/files":
            await self._upload(raw, headers.get("content-type", ""), send)
        elif method == "GET" and path.startswith("/v1/files/"):
            await self._file(path, send)
        elif method == "POST" and path == "/v1/batches":
            await self._create_batch(raw, send)
        elif method == "GET" and path.startswith("/v1/batches/"):
            await self._retrieve_batch(path.rsplit("/", 1)[1], send)
        elif method == "GET" and path == "/v1/models":
            await _send_json(send, 200, {"object": "list", "data": []})
        elif path == "/_stats":
            await _send_json(send, 200, {"counts": dict(self.counts), "chat_requests": self.counts["chat"]})
        elif method == "POST" and path == "/_reset":
            self.reset()
            await _send_json(send, 200, {"ok": True})
        elif method == "POST" and path == "/_config":
            self._configure(json.loads(raw or b"{}"))
            await _send_json(send, 200, {"ok": True})
        else:
            await _send_json(send, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})

    def _configure(self, update: dict[str, Any]) -> None:
        faults = update.pop("faults", None)
        if faults is not None:
            self.state.faults = FaultRates(**faults)
        for name, value in update.items():
            if name not in {f.name for f in fields(ServerState)}:
                raise ValueError(f"unknown server setting {name!r}")
            setattr(self.state, name, value)

    def _record(self, path: str, body: dict[str, Any], status: int) -> None:
        self.counts["chat" if path == "/v1/chat/completions" else path] += 1
        self.counts[f"status_{status}"] += 1
        if self.state.keep_bodies:
            self.received.append(Seen(path, body, status, time.time()))

    def _action_for(self, body: dict[str, Any], digest: bytes) -> tuple[Action | None, int]:
        """The scripted action (rule first, then random first-attempt faults) and the variant."""
        variant = self._seen[digest]
        self._seen[digest] += 1
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])
        for rule in self.rules:
            if rule.contains in text:
                action = rule.next_action()
                if action is not None:
                    return action, variant
        if variant == 0:
            return self.state.faults.pick(digest), variant
        return None, variant

    async def _chat(self, raw: bytes, send: Any) -> None:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            await _send_json(send, 400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        digest = hashlib.sha1(raw).digest()
        action, variant = self._action_for(body, digest)
        if isinstance(action, Fault):
            await self._fault(action, body, variant, send)
            return
        if self.state.latency:
            await asyncio.sleep(self.state.latency)
        reply = Reply(action) if isinstance(action, str) else action or self.responder(body, variant, self.state)
        self._record("/v1/chat/completions", body, 200)
        await _send_json(send, 200, completion_body(body, reply))

    async def _fault(self, fault: Fault, body: dict[str, Any], variant: int, send: Any) -> None:
        path = "/v1/chat/completions"
        if fault.kind == "429":
            self._record(path, body, 429)
            extra = [(b"retry-after", str(fault.retry_after).encode())] if fault.retry_after is not None else []
            await _send_json(send, 429, {"error": {"message": "Rate limit reached (scripted)", "type": "rate_limit_error"}}, extra)
            return
        if self.state.latency:
            await asyncio.sleep(self.state.latency)
        if fault.kind == "400":
            self._record(path, body, 400)
            await _send_json(send, 400, {"error": {"message": "Invalid request (scripted)", "type": "invalid_request_error"}})
        elif fault.kind == "500":
            self._record(path, body, 500)
            await _send_json(send, 500, {"error": {"message": "The server had an error (scripted)", "type": "server_error"}})
        elif fault.kind == "timeout":
            self._record(path, body, 0)
            await asyncio.sleep(fault.delay)
            await _send_json(send, 200, completion_body(body, self.responder(body, variant, self.state)))
        elif fault.kind == "truncated":
            self._record(path, body, 200)
            reply = self.responder(body, variant, self.state)
            cut = reply.text.rsplit("\n", 1)[0] if "\n" in reply.text else reply.text[: len(reply.text) // 2]
            await _send_json(send, 200, completion_body(body, Reply(cut, "length", reply.certainty)))
        elif fault.kind == "malformed":
            self._record(path, body, 200)
            await _send_raw(send, 200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": []}')
        elif fault.kind == "cut":
            self._record(path, body, 200)
            payload = json.dumps(completion_body(body, self.responder(body, variant, self.state))).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
            # returning now leaves the response incomplete: uvicorn closes the connection

    # -- files and batches --------------------------------------------------------------------------
    async def _upload(self, raw: bytes, content_type: str, send: Any) -> None:
        parts = _multipart(raw, content_type)
        if "file" not in parts:
            await _send_json(send, 400, {"error": {"message": "multipart field 'file' is required", "type": "invalid_request_error"}})
            return
        file_id = "file-" + hashlib.sha1(parts["file"] + str(len(self._files)).encode()).hexdigest()[:24]
        purpose = parts.get("purpose", b"batch").decode()
        self._files[file_id] = {"bytes": parts["file"], "purpose": purpose}
        self.counts["/v1/files"] += 1
        await _send_json(send, 200, _file_object(file_id, len(parts["file"]), purpose))

    async def _file(self, path: str, send: Any) -> None:
        pieces = path.split("/")  # ['', 'v1', 'files', id, ('content')]
        file = self._files.get(pieces[3])
        if file is None:
            await _send_json(send, 404, {"error": {"message": f"no file {pieces[3]}", "type": "not_found"}})
        elif len(pieces) > 4 and pieces[4] == "content":
            await _send_raw(send, 200, file["bytes"], b"application/octet-stream")
        else:
            await _send_json(send, 200, _file_object(pieces[3], len(file["bytes"]), file["purpose"]))

    async def _create_batch(self, raw: bytes, send: Any) -> None:
        body = json.loads(raw)
        source = self._files.get(body.get("input_file_id", ""))
        if source is None:
            await _send_json(send, 400, {"error": {"message": "input_file_id not found", "type": "invalid_request_error"}})
            return
        batch_id = "batch_" + hashlib.sha1(f"{body['input_file_id']}{len(self._batches)}".encode()).hexdigest()[:24]
        ok_lines, error_lines = [], []
        for n, line in enumerate(source["bytes"].decode().splitlines()):
            if not line.strip():
                continue
            item = json.loads(line)
            request = item["body"]
            digest = hashlib.sha1(json.dumps(request, sort_keys=True).encode()).digest()
            action, variant = self._action_for(request, digest)
            self.counts["batch_lines"] += 1
            if isinstance(action, Fault) and action.kind in ("429", "500", "malformed", "cut", "timeout"):
                error_lines.append({"id": f"batch_req_{n}", "custom_id": item["custom_id"], "response": {"status_code": 500, "body": {"error": {"message": "scripted batch line failure", "type": "server_error"}}}, "error": None})
                continue
            reply = Reply(action) if isinstance(action, str) else action if isinstance(action, Reply) else self.responder(request, variant, self.state)
            ok_lines.append({"id": f"batch_req_{n}", "custom_id": item["custom_id"], "response": {"status_code": 200, "request_id": f"req_{n}", "body": completion_body(request, reply)}, "error": None})
        output_id = error_id = None
        if ok_lines:
            output_id = f"file-out-{batch_id}"
            self._files[output_id] = {"bytes": "\n".join(json.dumps(x) for x in ok_lines).encode() + b"\n", "purpose": "batch_output"}
        if error_lines:
            error_id = f"file-err-{batch_id}"
            self._files[error_id] = {"bytes": "\n".join(json.dumps(x) for x in error_lines).encode() + b"\n", "purpose": "batch_output"}
        self._batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "created_at": int(time.time()),
            "status": "validating",
            "request_counts": {"total": len(ok_lines) + len(error_lines), "completed": len(ok_lines), "failed": len(error_lines)},
            "_output": output_id,
            "_error": error_id,
            "_polls": 0,
        }
        self.counts["/v1/batches"] += 1
        await _send_json(send, 200, _public(self._batches[batch_id]))

    async def _retrieve_batch(self, batch_id: str, send: Any) -> None:
        batch = self._batches.get(batch_id)
        if batch is None:
            await _send_json(send, 404, {"error": {"message": f"no batch {batch_id}", "type": "not_found"}})
            return
        batch["_polls"] += 1
        if batch["_polls"] > self.state.batch_polls:
            batch.update(status="completed", output_file_id=batch["_output"], error_file_id=batch["_error"], completed_at=int(time.time()))
        else:
            batch["status"] = "in_progress"
        await _send_json(send, 200, _public(batch))


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


async def _send_json(send: Any, status: int, payload: Any, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send_raw(send, status, json.dumps(payload).encode(), b"application/json", extra_headers)


async def _send_raw(send: Any, status: int, data: bytes, content_type: bytes = b"application/json", extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(data)).encode()), *(extra_headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.llm.scripted_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--position-bias", type=float, default=0.0)
    for f in fields(FaultRates):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.default is not None else float, default=f.default)
    args = parser.parse_args(argv)
    rates = FaultRates(**{f.name: getattr(args, f.name) for f in fields(FaultRates)})
    server = ScriptedServer(latency=args.latency, faults=rates, position_bias=args.position_bias, keep_bodies=False, port=args.port)
    server.serve_forever()
    return 0


__all__ = ["Fault", "FaultRates", "Reply", "ScriptedServer", "default_responder"]

if __name__ == "__main__":
    sys.exit(main())
