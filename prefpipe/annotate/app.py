"""The annotators' web app: one page and the JSON API behind it (FastAPI).

Every API call but the health check carries `Authorization: Bearer TOKEN`: an annotator's own
token or a session token from /api/login (store/sessions.py). The token is checked before the
body is read (guard.py), and answers and skips read at most Limits.max_body_bytes of body
(FastAPI's max_body_size). Store work runs on one dedicated thread
that owns the SQLite connection (worker.py), so the event loop never blocks on disk; answers,
skips, sign-ins and admin changes are acknowledged only after an fsync. Tasks come with HTML
rendered when they were queued: nothing is rendered on a request (render.py).

API
- POST /api/login                 -> 200 {token, expires_at}: a session token for the page, in
                                    exchange for the annotator's own token.
- POST /api/logout                -> 204; the token it is called with stops working (a session; or
                                    the annotator's own token, with all their sessions).
- GET  /api/tasks/next           -> 200 {task_id, prompt, response_a, response_b, rubric,
                                    guideline_version} in this annotator's A/B order, or 204.
                                    `?render=html` adds {"rendered": {prompt, response_a,
                                    response_b}} (safe HTML, for the page).
- POST /api/tasks/{id}/annotations {"label": "A>B", "dimensions": {"helpfulness": {"A": 4, "B": 2}}}
                                 -> 201 receipt; label and scores in the annotator's view.
- POST /api/tasks/{id}/skip       {"reason": "..."} -> 200 receipt.
- GET  /api/me                    -> progress and flag state.
- GET  /api/admin/annotators      -> every annotator with counts, gold accuracy and its 95% Wilson
                                    interval, flag state and reason, median time on task, last seen.
- POST /api/admin/annotators/{name}/unflag
- GET  /api/admin/batches         -> every batch's queue: pairs, labels wanted and answered, skips,
                                    tasks in flight, pairs complete and waiting, gold pairs.
  The page shows these to an admin instead of tasks (static/admin.js). The two reports are read
  on a connection of their own, beside the store thread (admin_reads.py): seconds over millions of
  answers, and no annotator waits for them.
- GET  /api/health                -> {"ok": true} (no token; for readiness checks).
- GET  /api/openapi.json          -> the schema, for admins, only when create_app(openapi=True).

Errors: 401 missing/unknown/revoked/expired token or disabled account (the detail says which);
403 admin-only endpoint, an admin asking for tasks, or a flagged annotator asking for tasks; 404 a
task that is not this annotator's (another's looks the same as a missing one); 409 a second answer
to the same task (the first stands); 413 a body over Limits.max_body_bytes (1 MiB); 422 a bad
body, naming the field in `detail[].loc` and saying why, never echoing the value; 429 more than
Limits.max_concurrent (4) requests of one annotator in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from prefpipe.annotate.admin_reads import ReportReader
from prefpipe.annotate.errors import (
    AlreadyAnswered,
    AnnotatorError,
    AnnotatorPaused,
    FieldError,
    UNAVAILABLE_DETAIL,
    StoreUnavailable,
    TaskNotFound,
)
from prefpipe.annotate.guard import Limits, RequestGuard
from prefpipe.annotate.store import SESSION_TTL_S, AnnotationStore, SignedIn, iso_utc
from prefpipe.annotate.worker import StoreWorker
from prefpipe.core.labels import SCALE

STATIC_DIR = Path(__file__).with_name("static")
PUBLIC = frozenset({"/api/health"})
LOC_PART_MAX = 64
"""A field name in a 422's `loc` longer than this is cut: a key is what a client sent, too."""

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

Label = Literal["A>>B", "A>B", "A=B", "B>A", "B>>A"]
assert tuple(Label.__args__) == SCALE  # type: ignore[attr-defined]


class AnnotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Label
    dimensions: dict[str, Any] | None = None
    """{dimension: {"A": score, "B": score}}; validated against the task's rubric by the store."""


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


class SecurityHeaders:
    """A plain ASGI middleware (cheaper than BaseHTTPMiddleware) adding SECURITY_HEADERS to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AdminsOnly(Exception):
    """An admin endpoint called with a non-admin token."""


def create_app(
    store: AnnotationStore | None = None,
    *,
    limits: Limits | None = None,
    session_ttl_s: float = SESSION_TTL_S,
    openapi: bool = False,
) -> FastAPI:
    """The app over `store` (default: the store at settings.annotation_store_path()); `limits` on
    body size and requests in flight (default Limits(): 1 MiB, 4), how long a page session lasts,
    and whether admins may read the OpenAPI schema (off by default: it maps the whole API)."""
    owns_store = store is None
    store = store or AnnotationStore()
    worker = StoreWorker(store)
    reports = ReportReader(store.location)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()
        reports.close()
        if owns_store:
            store.close()

    app = FastAPI(title="prefpipe annotate", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.store = store

    limits = limits or Limits()
    body_limit = limits.max_body_bytes

    async def signed_in(request: Request) -> SignedIn:  # async: a sync dependency would run in a thread pool
        return request.state.signed_in  # set by RequestGuard on every /api/ path but the public ones

    async def admin(who: SignedIn = Depends(signed_in)) -> SignedIn:
        if who.annotator.role != "admin":
            raise AdminsOnly()
        return who

    Who = Depends(signed_in)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"type": e["type"], "loc": [_short(part) for part in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(AdminsOnly)
    async def admins_only(_: Request, exc: AdminsOnly) -> JSONResponse:
        return JSONResponse({"detail": "admins only"}, status_code=403)

    @app.exception_handler(FieldError)
    async def field_error(_: Request, exc: FieldError) -> JSONResponse:
        loc = ["body", *(_short(part) for part in exc.field.split("."))]
        return JSONResponse({"detail": [{"type": "value_error", "loc": loc, "msg": exc.message}]}, status_code=422)

    @app.exception_handler(TaskNotFound)
    async def not_found(_: Request, exc: TaskNotFound) -> JSONResponse:
        return JSONResponse({"detail": "no such task"}, status_code=404)

    @app.exception_handler(AlreadyAnswered)
    async def already(_: Request, exc: AlreadyAnswered) -> JSONResponse:
        return JSONResponse({"detail": "this task was already answered; the first answer stands"}, status_code=409)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:  # nothing was stored: send it again
        return JSONResponse({"detail": UNAVAILABLE_DETAIL}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(AnnotatorPaused)
    async def paused(_: Request, exc: AnnotatorPaused) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "flagged": True}, status_code=403)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health")
    async def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.post("/api/login")
    async def login(who: SignedIn = Who) -> JSONResponse:
        if who.session_id is not None:
            return JSONResponse({"detail": "this is a session already: sign in with your annotator token"}, status_code=400)
        token, expires_at = await worker.call(store.open_session, who, session_ttl_s, durable=True)
        return JSONResponse({"token": token, "expires_at": iso_utc(expires_at)})

    @app.post("/api/logout", status_code=204)
    async def logout(who: SignedIn = Who) -> Response:
        await worker.call(store.sign_out, who, durable=True)
        return Response(status_code=204)

    @app.get("/api/tasks/next", responses={204: {"description": "nothing left for this annotator"}})
    async def next_task(render: Literal["html"] | None = None, who: SignedIn = Who) -> Response:
        try:
            task = await worker.call(store.next_task, who.annotator)
        except AnnotatorError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=403)
        if task is None:
            return Response(status_code=204)
        body = task.to_json()
        if render == "html":
            body["rendered"] = task.rendered
        return JSONResponse(body)

    @app.post("/api/tasks/{task_id}/annotations", status_code=201, max_body_size=body_limit)
    async def annotate(task_id: str, body: AnnotationIn, who: SignedIn = Who) -> JSONResponse:
        receipt = await worker.call(store.answer, who.annotator, task_id, body.label, body.dimensions, durable=True)
        return JSONResponse(receipt.to_json(), status_code=201)

    @app.post("/api/tasks/{task_id}/skip", max_body_size=body_limit)
    async def skip(task_id: str, body: SkipIn, who: SignedIn = Who) -> JSONResponse:
        receipt = await worker.call(store.skip, who.annotator, task_id, body.reason, durable=True)
        return JSONResponse(receipt.to_json())

    @app.get("/api/me")
    async def me(who: SignedIn = Who) -> JSONResponse:
        return JSONResponse(await worker.call(store.progress, who.annotator))

    @app.get("/api/admin/annotators")
    async def list_annotators(_: SignedIn = Depends(admin)) -> JSONResponse:
        return JSONResponse(await reports.read("annotator_report"))

    @app.get("/api/admin/batches")
    async def batches(_: SignedIn = Depends(admin)) -> JSONResponse:
        return JSONResponse(await reports.read("queue_progress"))

    @app.post("/api/admin/annotators/{name}/unflag")
    async def unflag(name: str, _: SignedIn = Depends(admin)) -> JSONResponse:
        try:
            await worker.call(store.unflag, name, durable=True)
        except AnnotatorError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return JSONResponse({"name": name, "flagged": False})

    if openapi:
        @app.get("/api/openapi.json", include_in_schema=False)
        async def schema(_: SignedIn = Depends(admin)) -> JSONResponse:
            return JSONResponse(app.openapi())

    async def sign_in(token: str | None) -> SignedIn:
        return await worker.call(store.sign_in, token)

    app.add_middleware(RequestGuard, sign_in=sign_in, limits=limits, public=PUBLIC)
    app.add_middleware(SecurityHeaders)
    return app


def _short(part: Any) -> Any:
    return part[:LOC_PART_MAX] + "…" if isinstance(part, str) and len(part) > LOC_PART_MAX else part
