"""One attempt on the wire and how it can fail: the POST, the body read under a size cap, the
whole attempt under a deadline, and which failures are worth another attempt.

The cap and the deadline exist because the HTTP stack bounds neither: a read timeout is a gap
between two bytes, so a server trickling a byte a second never trips it, and a non-streamed
body is read whole into memory however large it is. The body is therefore read through openai's
own raw-stream route (the header its `with_streaming_response` wrappers set), chunk by chunk.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from typing import Any

from prefpipe.llm.request import MalformedResponse

RETRYABLE_STATUS = frozenset({408, 409, 429})
RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}
"""openai's request header for "hand me the unread response" (openai._constants.RAW_RESPONSE_HEADER)."""


class ResponseTooLarge(Exception):
    """The answer's body is over `max_response_bytes`. Not retried: the same request would most
    likely be answered (and paid for) at the same size again."""

    def __init__(self, limit: int):
        super().__init__(f"response larger than {limit} bytes (max_response_bytes); the rest was not read")


class AttemptTimeout(TimeoutError):
    """No complete answer within the attempt's deadline (a stalled or trickling server)."""


class BodyBrokeOff(Exception):
    """The connection failed while the body was being read (openai wraps only what it reads itself)."""


async def post_chat(openai: Any, body: dict[str, Any], *, max_bytes: int, timeout_s: float) -> bytes:
    """POST /chat/completions and return the body, at most `max_bytes` of it, all within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            # openai's documented raw route (its HTTP stack, errors and headers, without re-validating
            # our already well-formed body on every call), asking for the response unread
            response = await openai.post("/chat/completions", body=body, cast_to=bytes, options={"headers": RAW_STREAM})
            try:
                return await read_capped(response, max_bytes)
            finally:
                await response.close()
    except TimeoutError as exc:
        raise AttemptTimeout(f"no complete answer within {timeout_s:g} s (timeout_s)") from exc


async def read_capped(response: Any, limit: int) -> bytes:
    """The (decoded) body of an unread response, refusing it as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit)
            chunks.append(chunk)
    except ResponseTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - the transport's read errors, whatever its HTTP library
        raise BodyBrokeOff(f"the body broke off after {size} bytes ({type(exc).__name__}: {exc})") from exc
    return b"".join(chunks)


def is_retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (MalformedResponse, AttemptTimeout, BodyBrokeOff)):
        return True
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After-Ms, Retry-After seconds or HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def describe_error(exc: BaseException, attempts: int) -> str:
    status = getattr(exc, "status_code", None)
    head = f"HTTP {status}" if status else type(exc).__name__
    message = str(exc).strip().replace("\n", " ")[:300]
    return f"{head} after {attempts} attempt(s): {message}"
