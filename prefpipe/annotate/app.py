"""The annotators' web app: one page and the JSON API behind it (FastAPI).

Every API call carries `Authorization: Bearer TOKEN`. Store work runs on one dedicated thread
that owns the SQLite connection (StoreWorker): the event loop never blocks on disk, requests are
serialised the way SQLite wants its writers anyway, and whatever queued up meanwhile is committed
together (group commit), so durable answers (synchronous=FULL) stay cheap under load. Answers,
skips and admin changes are acknowledged only after an fsync; serving a task is not worth one
(after a power cut an unanswered task is simply served again).

API
- GET  /api/tasks/next           -> 200 {task_id, prompt, response_a, response_b, rubric,
                                    guideline_version} in this annotator's A/B order, or 204.
                                    `?render=html` adds {"rendered": {prompt, response_a,
                                    response_b}} (safe HTML, for the page).
- POST /api/tasks/{id}/annotations {"label": "A>B", "dimensions": {"helpfulness": {"A": 4, "B": 2}}}
                                 -> 201 receipt; label and scores in the annotator's view.
- POST /api/tasks/{id}/skip       {"reason": "..."} -> 200 receipt.
- GET  /api/me                    -> progress and flag state.
- GET  /api/admin/annotators      -> every annotator with gold accuracy, flag state and reason.
- POST /api/admin/annotators/{name}/unflag
- GET  /api/health                -> {"ok": true} (no token; for readiness checks).

Errors: 401 missing/unknown/disabled token; 403 admin-only endpoint, an admin asking for tasks,
or a flagged annotator asking for tasks; 404 a task that is not this annotator's (another's looks
the same as a missing one); 409 a second answer to the same task (the first stands); 422 a bad
body, naming the field in `detail[].loc`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from prefpipe.annotate.errors import AlreadyAnswered, AnnotatorError, AnnotatorPaused, FieldError, TaskNotFound
from prefpipe.annotate.render import to_html
from prefpipe.annotate.store import AnnotationStore
from prefpipe.core.labels import SCALE

STATIC_DIR = Path(__file__).with_name("static")
T = TypeVar("T")
Credentials = HTTPAuthorizationCredentials | None

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


class Unauthorized(Exception):
    """No token, or one that matches no enabled annotator."""


class AdminsOnly(Exception):
    """An admin endpoint called with a non-admin token."""


class StoreWorker:
    """One thread owns the store; requests queue up and each round runs everything queued in one
    transaction (group commit): one fsync for many answers, each answer acknowledged only after
    the commit that made it durable. The event loop never waits on disk."""

    MAX_GROUP = 256

    def __init__(self, store: AnnotationStore) -> None:
        self.store = store
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="annotation-store", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        """Run fn(*args) on the store thread; `durable` when it stores something a client is told is kept."""
        future: Future = Future()
        self._jobs.put((future, fn, args, durable))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            outcomes: list[tuple[Future, bool, Any]] = []
            try:
                with self.store.group(durable=any(job[3] for job in jobs)):
                    for future, fn, args, _durable in jobs:
                        if not future.set_running_or_notify_cancel():
                            continue
                        try:
                            outcomes.append((future, True, fn(*args)))
                        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                            outcomes.append((future, False, exc))
            except Exception as exc:  # noqa: BLE001 - the commit failed: nothing was stored, say so to all
                outcomes = [(future, False, exc) for future, _ok, _value in outcomes]
            for future, ok, value in outcomes:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)


def create_app(store: AnnotationStore | None = None) -> FastAPI:
    """The app over `store` (default: the store at settings.annotation_store_path())."""
    owns_store = store is None
    store = store or AnnotationStore()
    worker = StoreWorker(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()
        if owns_store:
            store.close()

    app = FastAPI(
        title="prefpipe annotate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.store = store
    bearer = HTTPBearer(auto_error=False)

    def authed(token: str | None, admin: bool, fn: Callable[..., T], *args: Any) -> T:
        """Runs on the store thread: authenticate, then act, in the same round trip."""
        who = store.authenticate(token)
        if who is None:
            raise Unauthorized()
        if admin and who.role != "admin":
            raise AdminsOnly()
        return fn(who, *args)

    async def as_annotator(credentials: Credentials, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        token = credentials.credentials if credentials else None
        return await worker.call(authed, token, False, fn, *args, durable=durable)

    async def as_admin(credentials: Credentials, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        token = credentials.credentials if credentials else None
        return await worker.call(authed, token, True, fn, *args, durable=durable)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": "missing, unknown or disabled token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(AdminsOnly)
    async def admins_only(_: Request, exc: AdminsOnly) -> JSONResponse:
        return JSONResponse({"detail": "admins only"}, status_code=403)

    @app.exception_handler(FieldError)
    async def field_error(_: Request, exc: FieldError) -> JSONResponse:
        loc = ["body", *exc.field.split(".")]
        return JSONResponse({"detail": [{"type": "value_error", "loc": loc, "msg": exc.message}]}, status_code=422)

    @app.exception_handler(TaskNotFound)
    async def not_found(_: Request, exc: TaskNotFound) -> JSONResponse:
        return JSONResponse({"detail": "no such task"}, status_code=404)

    @app.exception_handler(AlreadyAnswered)
    async def already(_: Request, exc: AlreadyAnswered) -> JSONResponse:
        return JSONResponse({"detail": "this task was already answered; the first answer stands"}, status_code=409)

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

    @app.get("/api/tasks/next", responses={204: {"description": "nothing left for this annotator"}})
    async def next_task(render: Literal["html"] | None = None, credentials: Credentials = Depends(bearer)) -> Response:
        try:
            task = await as_annotator(credentials, store.next_task)
        except AnnotatorError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=403)
        if task is None:
            return Response(status_code=204)
        body = task.to_json()
        if render == "html":
            body["rendered"] = {k: to_html(body[k]) for k in ("prompt", "response_a", "response_b")}
        return JSONResponse(body)

    @app.post("/api/tasks/{task_id}/annotations", status_code=201)
    async def annotate(task_id: str, body: AnnotationIn, credentials: Credentials = Depends(bearer)) -> JSONResponse:
        receipt = await as_annotator(credentials, store.answer, task_id, body.label, body.dimensions, durable=True)
        return JSONResponse(receipt.to_json(), status_code=201)

    @app.post("/api/tasks/{task_id}/skip")
    async def skip(task_id: str, body: SkipIn, credentials: Credentials = Depends(bearer)) -> JSONResponse:
        receipt = await as_annotator(credentials, store.skip, task_id, body.reason, durable=True)
        return JSONResponse(receipt.to_json())

    @app.get("/api/me")
    async def me(credentials: Credentials = Depends(bearer)) -> JSONResponse:
        return JSONResponse(await as_annotator(credentials, store.progress))

    @app.get("/api/admin/annotators")
    async def list_annotators(credentials: Credentials = Depends(bearer)) -> JSONResponse:
        return JSONResponse(await as_admin(credentials, lambda _who: store.list_annotators()))

    @app.post("/api/admin/annotators/{name}/unflag")
    async def unflag(name: str, credentials: Credentials = Depends(bearer)) -> JSONResponse:
        try:
            await as_admin(credentials, lambda _who: store.unflag(name), durable=True)
        except AnnotatorError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return JSONResponse({"name": name, "flagged": False})

    app.add_middleware(SecurityHeaders)
    return app
