"""The persistent answer cache: a rerun or a resumed run never pays twice for the same call.

One SQLite file (settings.llm_cache_path() by default) in WAL mode, so several processes can read
while one writes, and every answer is committed the moment it arrives: a run killed halfway keeps
every answer it received. Answers are stored zlib-compressed (token log-probabilities make them
large). Only successful answers are stored; a failure is retried by the next run.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefpipe.core import settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    job_id TEXT PRIMARY KEY,
    base_url TEXT NOT NULL,
    status TEXT NOT NULL,
    input_file_id TEXT,
    output_file_id TEXT,
    error_file_id TEXT,
    n_requests INTEGER NOT NULL,
    submitted_at TEXT NOT NULL,
    closed_at TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS batch_requests (
    key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    model TEXT NOT NULL
);
"""

_CHUNK = 500  # keys per SELECT ... IN (...): well under SQLite's variable limit
_INSERT = "INSERT OR REPLACE INTO completions (key, model, payload, created_at) VALUES (?, ?, ?, ?)"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LLMCache:
    """Answers by cache key. Thread-safe; one connection per instance."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else settings.llm_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> "LLMCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self.conn.execute("SELECT payload FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else _decode(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Every stored answer among `keys`, in one pass (a fully cached rerun does no per-key query)."""
        unique = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, payload in self.conn.execute(f"SELECT key, payload FROM completions WHERE key IN ({marks})", chunk):
                    out[key] = _decode(payload)
        return out

    def put(self, key: str, model: str, data: dict[str, Any]) -> None:
        """Store one answer and commit it at once (autocommit), so a crash loses nothing received."""
        blob = _encode(data)
        with self._lock:
            self.conn.execute(_INSERT, (key, model, blob, now_iso()))

    def put_many(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
        """Store many answers in one transaction (Batch API ingestion)."""
        stamp = now_iso()
        encoded = [(key, model, _encode(data), stamp) for key, model, data in rows]
        self.executemany(_INSERT, encoded)
        return len(encoded)

    def keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self.conn.execute("SELECT key FROM completions")}

    def __len__(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement under the instance lock (used by the Batch API bookkeeping)."""
        with self._lock:
            return self.conn.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement over many rows in one transaction, all or nothing."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(sql, [tuple(r) for r in rows])
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise


def _encode(data: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 1)


def _decode(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8"))
