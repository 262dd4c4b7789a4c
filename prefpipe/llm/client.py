"""The OpenAI-compatible client every stage uses: fast, resumable, never paying twice.

`LLMClient` wraps `openai.AsyncOpenAI` (its own retries off) with:
- a persistent cache (`LLMCache`): a request whose answer is stored is never sent again, and
  identical requests in flight at the same time are sent once;
- bounded concurrency (a semaphore held only while a request is on the wire) and optional
  request- and token-per-minute limits (aiolimiter's leaky buckets);
- retries with exponential backoff and full jitter (tenacity) on 429, 408/409, 5xx, timeouts,
  broken connections and malformed bodies, honouring Retry-After; after `max_attempts` the call
  is returned as `failed` with the error text, so one bad request never fails a whole batch;
- bounds on every attempt (`wire`): `timeout_s` from connect to the last byte, however slowly a
  server trickles, and at most `max_response_bytes` of body read;
- a ledger of every call it resolved, which `usage.usage_frame` prices;
- a Batch API mode (`batch_api()`), in which a cache miss is collected for a batch job instead
  of being sent.

The async methods are the core; `complete_many` and `run` are the sync facade for Dagster assets
and scripts. `openai` is imported only when a request must really be sent, so a fully cached
rerun does not pay its import time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from prefpipe.llm.batch import BatchCollector
from prefpipe.llm.cache import LLMCache
from prefpipe.llm.errors import LLMCacheError, LLMConfigError
from prefpipe.llm.prices import PriceTable, load_prices
from prefpipe.llm.request import ChatRequest, Completion, parse_chat_completion
from prefpipe.llm.wire import describe_error, is_retryable, post_chat, retry_after_seconds

T = TypeVar("T")
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
log = logging.getLogger(__name__)


class LLMSettings(BaseModel):
    """Where to send requests and how hard to push. Plain fields, so it can be run config."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint ending in /v1; default $OPENAI_BASE_URL, else OpenAI.")
    api_key: str | None = Field(None, description="Default $OPENAI_API_KEY. Local servers (vLLM, Ollama) accept any value.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds one attempt may take, from connect to the last byte of the answer, before it times out (and is retried).")
    connect_timeout_s: float = Field(10.0, gt=0, description="Seconds to open a connection; an unreachable server fails this attempt sooner.")
    max_response_bytes: int = Field(
        8 * 2**20, gt=0, description="Largest answer body read (log-probabilities make answers large); a larger one is refused unread and its call recorded as failed."
    )
    max_attempts: int = Field(6, description="Attempts per call before the call is recorded as failed.")
    backoff_initial_s: float = Field(0.5, description="Scale of the exponential backoff (full jitter).")
    backoff_max_s: float = Field(20.0, description="Longest backoff between two attempts.")
    max_retry_after_s: float = Field(120.0, description="A server's Retry-After is honoured up to this many seconds.")
    concurrency: int = Field(16, description="Requests on the wire at once.")
    requests_per_minute: float | None = Field(None, description="Request rate limit; none by default.")
    tokens_per_minute: float | None = Field(None, description="Token rate limit (prompt estimate + max_tokens); none by default.")
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens", description="OpenAI's reasoning models (o-series, gpt-5) want max_completion_tokens."
    )
    cache_path: str | None = Field(None, description="SQLite answer cache; default <data dir>/llm_cache.sqlite3.")
    use_cache: bool = Field(True, description="Off: every call is sent and nothing is stored.")
    cache_busy_timeout_s: float = Field(10.0, ge=0, description="Seconds to wait for another process's lock on the cache before giving up on it.")
    prices_path: str | None = Field(None, description="Price table overriding the packaged one; default <data dir>/prices.json if present.")

    def resolved_base_url(self) -> str:
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL).rstrip("/")

    def resolved_api_key(self) -> str:
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            return key
        if self.resolved_base_url() == OPENAI_DEFAULT_BASE_URL:
            raise LLMConfigError("no API key: set OPENAI_API_KEY (or api_key in the resource config) to call OpenAI")
        return "EMPTY"  # vLLM's and Ollama's documented convention for a server that checks no key


class _Session:
    """Per-event-loop state: the openai client, the semaphore, the limiters, calls in flight."""

    def __init__(self, settings: LLMSettings):
        import openai
        from aiolimiter import AsyncLimiter

        self.loop = asyncio.get_running_loop()
        self.openai = openai.AsyncOpenAI(
            base_url=settings.resolved_base_url(),
            api_key=settings.resolved_api_key(),
            max_retries=0,
            timeout=_timeouts(openai, settings),
            http_client=_http_client(openai, settings),
        )
        self.semaphore = asyncio.Semaphore(max(1, settings.concurrency))
        self.rpm = _bucket(AsyncLimiter, settings.requests_per_minute, burst_seconds=1.0)
        self.tpm = _bucket(AsyncLimiter, settings.tokens_per_minute, burst_seconds=10.0)

    async def throttle(self, request: ChatRequest) -> None:
        if self.rpm is not None:
            await self.rpm.acquire()
        if self.tpm is not None:
            estimate = sum(len(c) for _, c in request.messages) / 4 + (request.max_tokens or 256)
            await self.tpm.acquire(min(estimate, self.tpm.max_rate))


def _bucket(limiter: Any, per_minute: float | None, *, burst_seconds: float) -> Any:
    """A leaky bucket holding `burst_seconds` worth of the rate (at least one unit), so a limit
    smooths traffic instead of allowing a whole minute's budget in one burst."""
    if not per_minute:
        return None
    capacity = max(1.0, per_minute * burst_seconds / 60)
    return limiter(capacity, capacity * 60 / per_minute)


def _http_client(openai: Any, settings: LLMSettings) -> Any:
    """openai's aiohttp transport (the `openai[aiohttp]` extra) when installed: about half the
    CPU per request of the default httpx transport, which decides throughput at high concurrency."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return None
    return openai.DefaultAioHttpClient(timeout=_timeouts(openai, settings))


def _timeouts(openai: Any, settings: LLMSettings) -> Any:
    """The HTTP stack's own timeouts: connecting, and the longest silence between two bytes.
    Neither bounds a trickle; the attempt's deadline in `wire.post_chat` does."""
    return openai.Timeout(settings.timeout_s, connect=min(settings.connect_timeout_s, settings.timeout_s))


class LLMClient:
    """See the module docstring. Safe to share across coroutines of one event loop."""

    def __init__(
        self,
        settings: LLMSettings | None = None,
        *,
        cache: LLMCache | None = None,
        prices: PriceTable | None = None,
        **overrides: Any,
    ):
        base = settings or LLMSettings()
        self.settings = base.model_copy(update=overrides) if overrides else base
        self._cache = cache
        self._prices = prices
        self._memo: dict[str, dict[str, Any]] = {}
        self._absent: set[str] = set()
        """Keys the last prefetch found missing: looked up again only after this client stores them."""
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._cache_off = False
        """Set when the cache failed mid-batch: the rest of this client's life runs without it."""
        self._session: _Session | None = None
        self._batch: BatchCollector | None = None
        self.ledger: list[Completion] = []
        """Every call resolved by this client, in order: what `usage_frame` prices."""

    # -- resources ---------------------------------------------------------------------------
    @property
    def cache(self) -> LLMCache | None:
        """The answer cache, opened on first use. A file that cannot be opened raises LLMCacheError
        (the batch fails before anything is sent or paid for)."""
        if not self.settings.use_cache or self._cache_off:
            return None
        if self._cache is None:
            self._cache = LLMCache(self.settings.cache_path, busy_timeout_s=self.settings.cache_busy_timeout_s)
        return self._cache

    def _cache_failed(self, exc: LLMCacheError) -> None:
        """The cache failed while a batch was under way (answers may already be bought): drop it
        for the rest of this client's life and say so once, rather than lose the batch."""
        if not self._cache_off:
            log.warning("%s This run goes on without the cache: answers are still returned, but no more are read from or stored in it.", exc)
        self._cache_off = True

    @property
    def prices(self) -> PriceTable:
        if self._prices is None:
            self._prices = load_prices(self.settings.prices_path)
        return self._prices

    def session(self) -> _Session:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.loop is not loop:
            self._session = _Session(self.settings)
            self._inflight = {}
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.openai.close()
            self._session = None

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- the core --------------------------------------------------------------------------
    def prefetch(self, requests: list[ChatRequest]) -> int:
        """Load the stored answers of `requests` in one pass; returns how many were stored.

        Runs before a batch sends anything, so an unusable cache raises LLMCacheError here: going
        on without it would buy again every answer the file holds, and store none."""
        if self.cache is None:
            return 0
        asked = {r.key for r in requests if r.key not in self._memo}
        found = self.cache.get_many(asked)
        self._memo.update(found)
        self._absent = asked - found.keys()
        return sum(1 for r in requests if r.key in self._memo)

    def lookup(self, request: ChatRequest) -> Completion | None:
        """The stored answer of `request`, if any; nothing is sent."""
        data = self._memo.pop(request.key, None)
        if data is None and request.key not in self._absent and self.cache is not None:
            try:
                data = self.cache.get(request.key)
            except LLMCacheError as exc:
                self._cache_failed(exc)
        if data is None:
            return None
        completion = Completion.from_stored(request.key, data, request)
        if self._batch is not None and request.key in self._batch.ingested:
            completion.cached = False  # bought by a Batch API job whose answers this run collected
        return completion

    async def acomplete(self, request: ChatRequest) -> Completion:
        """The answer to `request`: from the cache, from an identical call in flight, or sent."""
        completion = self.lookup(request)
        if completion is None:
            completion = await self._resolve(request)
        self.ledger.append(completion)
        return completion

    async def _resolve(self, request: ChatRequest) -> Completion:
        if self._batch is not None:
            return self._batch.defer(request)
        session = self.session()
        running = self._inflight.get(request.key)
        if running is not None:
            first = await asyncio.shield(running)
            return _shared_copy(first, request)
        future: asyncio.Future[Completion] = session.loop.create_future()
        self._inflight[request.key] = future
        try:
            completion = await self._send(session, request)
            future.set_result(completion)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(request.key, None)
        return completion

    async def acomplete_many(self, requests: list[ChatRequest]) -> list[Completion]:
        self.prefetch(requests)
        return list(await asyncio.gather(*(self.acomplete(r) for r in requests)))

    def complete_many(self, requests: list[ChatRequest]) -> list[Completion]:
        """Sync facade: answer every request (concurrently), in order."""
        return self.run(lambda: self.acomplete_many(requests))

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run an async function of this client on a fresh event loop and close its connections.

        Works from plain code and Dagster assets; inside a running loop (a notebook) it runs on a
        worker thread instead.
        """

        async def main() -> T:
            try:
                return await fn()
            finally:
                await self.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _run_loop(main())
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(lambda: _run_loop(main())).result()

    # -- Batch API mode ------------------------------------------------------------------------
    @asynccontextmanager
    async def batch_api(self) -> AsyncIterator[BatchCollector]:
        """Inside this block a cache miss is collected, not sent; on exit the collected requests
        are submitted as Batch API jobs. Finished jobs are polled and ingested on entry."""
        cache = self.cache
        if cache is None:
            raise LLMConfigError("Batch API mode needs the cache (use_cache=True): answers arrive in a later run")
        collector = BatchCollector(cache, self.settings.resolved_base_url(), openai=lambda: self.session().openai, wire_body=self.wire_body)
        await collector.poll()
        self._absent.clear()  # the poll may have stored answers that the last prefetch missed
        self._batch = collector
        try:
            yield collector
        finally:
            self._batch = None
        await collector.submit()

    # -- one request on the wire, with retries ---------------------------------------------------------------
    async def _send(self, session: _Session, request: ChatRequest) -> Completion:
        """One call: a first attempt on the fast path, then, only if it failed in a way worth
        retrying, tenacity drives the remaining attempts with backoff."""
        body = self.wire_body(request)
        started = time.perf_counter()
        attempts = 1
        try:
            completion = await self._attempt(session, request, body)
        except Exception as first:  # noqa: BLE001 - any failure is recorded on the row, never raised
            if not is_retryable(first) or self.settings.max_attempts <= 1:
                return self._failed(request, first, attempts, started)
            await asyncio.sleep(self._backoff_seconds(first, 1))
            try:
                completion, retried = await self._retry(session, request, body)
            except _RetriesExhausted as gave_up:
                return self._failed(request, gave_up.last, 1 + gave_up.attempts, started)
            attempts += retried
        completion.attempts = attempts
        completion.latency_s = time.perf_counter() - started
        self._store(request, completion)
        return completion

    def _store(self, request: ChatRequest, completion: Completion) -> None:
        """Keep a bought answer; a cache that fails now costs the cache, never the answer."""
        if self.cache is None:
            return
        try:
            self.cache.put(request.key, request.model, completion.stored())
        except LLMCacheError as exc:
            self._cache_failed(exc)
            return
        self._absent.discard(request.key)

    async def _attempt(self, session: _Session, request: ChatRequest, body: dict[str, Any]) -> Completion:
        await session.throttle(request)
        async with session.semaphore:
            raw = await post_chat(session.openai, body, max_bytes=self.settings.max_response_bytes, timeout_s=self.settings.timeout_s)
        return parse_chat_completion(raw, request)

    async def _retry(self, session: _Session, request: ChatRequest, body: dict[str, Any]) -> tuple[Completion, int]:
        from tenacity import (
            AsyncRetrying,
            RetryError,
            retry_if_exception,
            stop_after_attempt,
        )

        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts - 1),
            wait=lambda state: self._backoff_seconds(state.outcome.exception(), state.attempt_number + 1),
            retry=retry_if_exception(is_retryable),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    completion = await self._attempt(session, request, body)
        except RetryError as exc:
            raise _RetriesExhausted(exc.last_attempt.exception() or exc, attempts) from exc
        except Exception as exc:  # noqa: BLE001 - not worth retrying: recorded on the row
            raise _RetriesExhausted(exc, attempts) from exc
        return completion, attempts

    def _failed(self, request: ChatRequest, exc: BaseException, attempts: int, started: float) -> Completion:
        return Completion(
            key=request.key,
            model=request.model,
            status="failed",
            attempts=attempts,
            error=describe_error(exc, attempts),
            latency_s=time.perf_counter() - started,
            request=request,
        )

    def wire_body(self, request: ChatRequest) -> dict[str, Any]:
        """The request body as this endpoint wants it."""
        body = request.body()
        if self.settings.max_tokens_field != "max_tokens" and "max_tokens" in body:
            body[self.settings.max_tokens_field] = body.pop("max_tokens")
        return body

    def _backoff_seconds(self, exc: BaseException | None, attempt_number: int) -> float:
        """How long to wait after failed attempt `attempt_number`: the server's Retry-After when
        it sent one, else exponential backoff with full jitter (tenacity's wait_random_exponential)."""
        from tenacity import wait_random_exponential

        after = retry_after_seconds(exc)
        if after is not None:
            return min(after, self.settings.max_retry_after_s)
        wait = wait_random_exponential(multiplier=self.settings.backoff_initial_s, max=self.settings.backoff_max_s)
        return float(wait(_AttemptNumber(attempt_number)))


class _RetriesExhausted(Exception):
    def __init__(self, last: BaseException, attempts: int):
        super().__init__(str(last))
        self.last, self.attempts = last, attempts


class _AttemptNumber:
    """The one field of tenacity's RetryCallState that its wait strategies read."""

    def __init__(self, attempt_number: int):
        self.attempt_number = attempt_number


def _run_loop(coro: Awaitable[T]) -> T:
    """asyncio.run on uvloop when it is installed (less CPU per request), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def _shared_copy(first: Completion, request: ChatRequest) -> Completion:
    """An identical call answered by another coroutine: same answer, nothing paid twice."""
    copy = Completion(**{**first.__dict__, "request": request})
    copy.cached = first.ok
    copy.attempts = 0
    return copy
