"""Bare ASGI plumbing the scripted server's endpoints share: reading a request body and sending a
JSON, raw or OpenAI-style error response. No framework, so a response can also be cut short."""

from __future__ import annotations

import json
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
