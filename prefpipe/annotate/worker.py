"""The one thread that owns the annotation store while the app runs, with group commit.

Store work runs on one dedicated thread that owns the store's connection: the event loop never
blocks on the database. On SQLite, requests are serialised the way SQLite wants its writers
anyway, and whatever queued up meanwhile is committed together (group commit), so durable answers
(synchronous=FULL) stay cheap under load. On PostgreSQL each request is its own short transaction
(`store.group_commit` is False): the server commits concurrent transactions of all replicas
together itself, and one long group would hold row locks the other replicas wait on. Serving a
task is not worth an fsync (after a power cut an unanswered task is simply served again);
whatever a client is told is kept is.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from prefpipe.annotate.store import AnnotationStore

T = TypeVar("T")


class StoreWorker:
    """One thread owns the store; requests queue up and each round runs everything queued in one
    transaction (group commit): one fsync for many answers, each answer acknowledged only after
    the commit that made it durable. The event loop never waits on disk."""

    MAX_GROUP = 256

    def __init__(self, store: AnnotationStore) -> None:
        self.store = store
        self._group_size = self.MAX_GROUP if store.group_commit else 1
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
            while len(jobs) < self._group_size:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            outcomes: list[tuple[Future, bool, Any]] = []
            started: list[Future] = []
            try:
                with self.store.group(durable=any(job[3] for job in jobs)):
                    for future, fn, args, _durable in jobs:
                        if not future.set_running_or_notify_cancel():
                            continue
                        started.append(future)
                        try:
                            outcomes.append((future, True, fn(*args)))
                        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                            outcomes.append((future, False, exc))
            except Exception as exc:  # noqa: BLE001 - the group did not begin or commit: nothing was stored, say so to all
                waiting = started + [job[0] for job in jobs if job[0] not in started and job[0].set_running_or_notify_cancel()]
                outcomes = [(future, False, exc) for future in waiting]
            for future, ok, value in outcomes:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
