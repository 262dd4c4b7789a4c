"""What is checked before the app reads a request: who sent it, and how many they have in flight.

FastAPI reads and validates a body before any dependency runs, so a token checked in a dependency
is checked too late: anyone could make the server read (and, in a 422, echo) whatever they send.
This ASGI middleware runs first, for every /api/ path but the public ones (the health check):

1. the bearer token is checked (on the store thread) before a byte of the body is read: a missing,
   unknown, revoked or expired token is 401 at once, with the reason;
2. at most `Limits.max_concurrent` requests of one annotator (whichever of their tokens they use)
   are in flight at a time; one more is 429 with Retry-After, before its body is read.

Only then does a route read its body, under FastAPI's own per-route `max_body_size`
(`Limits.max_body_bytes` on the routes that take one): a Content-Length over it is 413 before
reading, a body sent without one (chunked) is 413 the moment it passes it. What a refused client
still sends is discarded by uvicorn as it arrives, never kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from prefpipe.annotate.errors import UNAVAILABLE_DETAIL, StoreUnavailable, TokenRefused


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    """Largest body an answer or a skip may have (1 MiB; an answer with every rubric score is under 2 KB)."""
    max_concurrent: int = 4
    """Requests one annotator may have in flight at once (the page never has more than two)."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name}: {getattr(self, name)!r} must be at least 1")


class RequestGuard:
    """The middleware; `sign_in(token)` returns who holds the token (with `.annotator.id`) or
    raises TokenRefused. Who signed in is put in the request's state as `signed_in`."""

    def __init__(self, app: Any, *, sign_in: Callable[[str | None], Awaitable[Any]], limits: Limits,
                 public: frozenset[str]) -> None:
        self.app = app
        self.sign_in = sign_in
        self.limits = limits
        self.public = public
        self.in_flight: Counter[int] = Counter()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/") or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        try:
            who = await self.sign_in(_bearer(scope))
        except TokenRefused as exc:
            await _refuse(scope, send, 401, str(exc), {"WWW-Authenticate": "Bearer"})
            return
        except StoreUnavailable:  # PostgreSQL restarting: say so, and that the request may be sent again
            await _refuse(scope, send, 503, UNAVAILABLE_DETAIL, {"Retry-After": "2"})
            return
        key = who.annotator.id
        if self.in_flight[key] >= self.limits.max_concurrent:
            await _refuse(scope, send, 429, f"more than {self.limits.max_concurrent} requests at once for this "
                                            "account; send the next when one has finished", {"Retry-After": "1"})
            return
        self.in_flight[key] += 1
        try:
            await self.app({**scope, "state": {**scope.get("state", {}), "signed_in": who}}, receive, send)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]


def _bearer(scope: dict) -> str | None:
    scheme, token = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
    return token if scheme.lower() == "bearer" and token else None


async def _refuse(scope: dict, send: Callable, status: int, detail: str, headers: dict[str, str]) -> None:
    """Answer without reading the body (uvicorn discards whatever of it still arrives)."""

    async def nothing() -> dict:
        return {"type": "http.disconnect"}

    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, nothing, send)
