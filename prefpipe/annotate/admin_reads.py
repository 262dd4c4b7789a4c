"""The admin page's reports, read on a store connection of their own, in a thread of their own.

A report over a store of millions of answers takes seconds (store/admin.py). On the store thread
(worker.py) every annotator's request would wait behind it; here it reads beside them: SQLite in
WAL mode lets a reader see the last commit while the store thread writes, and on PostgreSQL it is
one more connection. Changes (unflagging) still go through the store thread; a report read after
one is acknowledged sees it, since the store thread acknowledges only what it has committed.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from prefpipe.annotate.store import AnnotationStore, StoreLocation


class ReportReader:
    """Opens its own AnnotationStore on `location` when first asked for a report, and runs each
    report in a worker thread (`await reader.read("queue_progress")`)."""

    REPORTS = frozenset({"queue_progress", "annotator_report"})

    def __init__(self, location: StoreLocation) -> None:
        self._location = location
        self._store: AnnotationStore | None = None
        self._opening = threading.Lock()

    def _opened(self) -> AnnotationStore:
        with self._opening:
            if self._store is None:
                self._store = AnnotationStore(self._location)
            return self._store

    async def read(self, report: str) -> Any:
        if report not in self.REPORTS:
            raise ValueError(f"report: {report!r} is not one of {', '.join(sorted(self.REPORTS))}")
        return await asyncio.to_thread(lambda: getattr(self._opened(), report)())

    def close(self) -> None:
        with self._opening:
            if self._store is not None:
                self._store.close()
                self._store = None
