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
body), "cut" (the HTTP body stops halfway). Hostile servers: "huge_body" (a 200 of `size` bytes,
100 MB by default, streamed), "hang" (the request is read and nothing is ever sent), "trickle"
(a 200 whose body is one byte every `delay` seconds, forever). Valid JSON with no answer in it:
"empty_choices", "no_choices" (an error object with status 200), "null_content" (content null,
no tool call). The streaming and hanging faults stop as soon as the client goes away.
`FaultRates` injects the classic faults at random, deterministically by request hash, on first
attempts only: a retry of the same request is answered normally.

The pieces: `replies` (scripted replies, faults, the default responder, completion bodies),
`batch_api` (the Files and Batch API emulation), `asgi` (sending responses); this module is the
server itself, its routing and its chat endpoint, and re-exports what tests import.

Run alone: `python -m prefpipe.testing.scripted_server --latency 0.1 --rate-429 0.05` prints
`LISTENING http://127.0.0.1:PORT/v1` and serves until interrupted. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

from prefpipe.testing.asgi import read_body, send_error, send_json, stream_body, wait_for_disconnect
from prefpipe.testing.batch_api import BatchApi
from prefpipe.testing.replies import (
    Action,
    Fault,
    FaultRates,
    Reply,
    Responder,
    Rule,
    ServerState,
    completion_body,
    default_responder,
    huge_completion,
    quality,
    unusable_body,
)

UNUSABLE_BODY_FAULTS = frozenset({"malformed", "empty_choices", "no_choices", "null_content"})
BATCH_LINE_FAULTS = frozenset({"429", "500", "cut", "timeout", "huge_body", "hang", "trickle"} | UNUSABLE_BODY_FAULTS)
"""Faults that make a Batch API line fail; the others ("400", "truncated") get a normal answer."""


@dataclass
class Seen:
    """What the server received (tests assert on it)."""

    path: str
    body: dict[str, Any]
    status: int
    at: float


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
        self.batch_api = BatchApi(self._batch_line_reply, self.state, self.counts)
        self._files = self.batch_api.files
        """Uploaded and output files by id, on disk (shared with `batch_api`: `batch_api.content(id)` reads one)."""
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
        self.batch_api.close()

    def serve_forever(self) -> None:
        """Serve in this (main) thread until SIGINT/SIGTERM."""
        sock = self._bind()
        print(f"LISTENING {self.base_url}", flush=True)
        try:
            self._uvicorn().run(sockets=[sock])
        finally:
            self.batch_api.close()

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if method == "POST" and path == "/v1/files":
            await self.batch_api.upload(headers, receive, send)  # streamed to disk: never the whole body in memory
            return
        raw = await read_body(receive)
        if method == "POST" and path == "/v1/chat/completions":
            self.in_flight += 1
            try:
                await self._chat(raw, send, receive)
            finally:
                self.in_flight -= 1
        elif await self.batch_api.handle(method, path, raw, headers, send, scope.get("query_string", b"").decode("latin-1"), receive):
            pass
        elif method == "GET" and path == "/v1/models":
            await send_json(send, 200, {"object": "list", "data": []})
        elif path == "/_stats":
            await send_json(send, 200, {"counts": dict(self.counts), "chat_requests": self.counts["chat"]})
        elif method == "POST" and path == "/_reset":
            self.reset()
            await send_json(send, 200, {"ok": True})
        elif method == "POST" and path == "/_config":
            self._configure(json.loads(raw or b"{}"))
            await send_json(send, 200, {"ok": True})
        else:
            await send_error(send, 404, f"no route {method} {path}", "not_found")

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

    async def _chat(self, raw: bytes, send: Any, receive: Any) -> None:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            await send_error(send, 400, "body is not JSON", "invalid_request_error")
            return
        digest = hashlib.sha1(raw).digest()
        action, variant = self._action_for(body, digest)
        if isinstance(action, Fault):
            await self._fault(action, body, variant, send, receive)
            return
        if self.state.latency:
            await asyncio.sleep(self.state.latency)
        reply = self._reply(action, body, variant)
        self._record("/v1/chat/completions", body, 200)
        await send_json(send, 200, completion_body(body, reply))

    def _reply(self, action: Action | None, body: dict[str, Any], variant: int) -> Reply:
        """The scripted reply, a plain string as a reply, else (no action, or a fault that still
        gets an answer) the responder's."""
        if isinstance(action, str):
            return Reply(action)
        if isinstance(action, Reply):
            return action
        return self.responder(body, variant, self.state)

    def _batch_line_reply(self, request: dict[str, Any], digest: bytes) -> Reply | None:
        """A Batch API line's reply, scripted like a chat request (`digest`: a hash of the line,
        for the random faults); None when a fault fails it."""
        action, variant = self._action_for(request, digest)
        self.counts["batch_lines"] += 1
        if isinstance(action, Fault) and action.kind in BATCH_LINE_FAULTS:
            return None
        return self._reply(action, request, variant)

    async def _fault(self, fault: Fault, body: dict[str, Any], variant: int, send: Any, receive: Any) -> None:
        path = "/v1/chat/completions"
        if fault.kind == "429":
            self._record(path, body, 429)
            extra = [(b"retry-after", str(fault.retry_after).encode())] if fault.retry_after is not None else []
            await send_error(send, 429, "Rate limit reached (scripted)", "rate_limit_error", extra)
            return
        if self.state.latency:
            await asyncio.sleep(self.state.latency)
        if fault.kind == "400":
            self._record(path, body, 400)
            await send_error(send, 400, "Invalid request (scripted)", "invalid_request_error")
        elif fault.kind == "500":
            self._record(path, body, 500)
            await send_error(send, 500, "The server had an error (scripted)", "server_error")
        elif fault.kind == "timeout":
            self._record(path, body, 0)
            await asyncio.sleep(fault.delay)
            await send_json(send, 200, completion_body(body, self.responder(body, variant, self.state)))
        elif fault.kind == "truncated":
            self._record(path, body, 200)
            reply = self.responder(body, variant, self.state)
            cut = reply.text.rsplit("\n", 1)[0] if "\n" in reply.text else reply.text[: len(reply.text) // 2]
            await send_json(send, 200, completion_body(body, Reply(cut, "length", reply.certainty)))
        elif fault.kind in UNUSABLE_BODY_FAULTS:
            self._record(path, body, 200)
            await send_json(send, 200, unusable_body(fault.kind, body))
        elif fault.kind == "hang":
            self._record(path, body, 0)
            await wait_for_disconnect(receive)
        elif fault.kind in ("huge_body", "trickle"):
            self._record(path, body, 200)
            chunks = huge_completion(body, fault.size) if fault.kind == "huge_body" else itertools.repeat(b" ")
            self.counts[f"{fault.kind}_bytes"] += await stream_body(send, receive, 200, chunks, fault.delay if fault.kind == "trickle" else 0.0)
        elif fault.kind == "cut":
            self._record(path, body, 200)
            payload = json.dumps(completion_body(body, self.responder(body, variant, self.state))).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
            # returning now leaves the response incomplete: uvicorn closes the connection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.testing.scripted_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--position-bias", type=float, default=0.0)
    parser.add_argument("--batch-polls", type=int, default=1, help="polls of a batch that say in_progress before it is answered")
    for f in fields(FaultRates):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.default is not None else float, default=f.default)
    args = parser.parse_args(argv)
    rates = FaultRates(**{f.name: getattr(args, f.name) for f in fields(FaultRates)})
    server = ScriptedServer(latency=args.latency, faults=rates, position_bias=args.position_bias, batch_polls=args.batch_polls, keep_bodies=False, port=args.port)
    server.serve_forever()
    return 0


__all__ = [
    "Action",
    "Fault",
    "FaultRates",
    "Reply",
    "Rule",
    "ScriptedServer",
    "Seen",
    "ServerState",
    "completion_body",
    "default_responder",
    "quality",
]

if __name__ == "__main__":
    sys.exit(main())
