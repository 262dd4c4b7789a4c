"""Bare ASGI plumbing the scripted server's endpoints share: reading a request body and sending a
JSON, raw or OpenAI-style error response. No framework, so a response can also be cut short,
streamed without end, or never started."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

Headers = list[tuple[bytes, bytes]]


async def read_body(receive: Any) -> bytes:
    """The whole request body, however many ASGI messages it came in."""
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            return raw


async def send_json(send: Any, status: int, payload: Any, extra_headers: Headers | None = None) -> None:
    await send_raw(send, status, json.dumps(payload).encode(), b"application/json", extra_headers)


async def send_error(send: Any, status: int, message: str, kind: str, extra_headers: Headers | None = None) -> None:
    """An error body shaped like OpenAI's, which the `openai` client turns into its exceptions."""
    await send_json(send, status, {"error": {"message": message, "type": kind}}, extra_headers)


async def send_raw(send: Any, status: int, data: bytes, content_type: bytes = b"application/json", extra_headers: Headers | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(data)).encode()), *(extra_headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def wait_for_disconnect(receive: Any) -> None:
    """Return once the client has gone away (the request body must have been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def stream_body(send: Any, receive: Any, status: int, chunks: Iterable[bytes], pause: float = 0.0) -> int:
    """Send `chunks` as a chunked body, `pause` seconds apart, until they end or the client goes
    away; returns the bytes sent. uvicorn drops sends to a gone client silently, so the disconnect
    is watched for; its flow control keeps a slow reader from piling the body up in memory."""
    gone = asyncio.ensure_future(wait_for_disconnect(receive))
    sent = 0
    try:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        for chunk in chunks:
            if gone.done():
                return sent
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
            await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b""})
        return sent
    finally:
        gone.cancel()
