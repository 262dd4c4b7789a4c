"""The persistent answer cache: a rerun or a resumed run never pays twice for the same call.

One SQLite file (settings.llm_cache_path() by default) in WAL mode, so several processes can read
while one writes, and every answer is committed the moment it arrives: a run killed halfway keeps
every answer it received. Answers are stored zlib-compressed (token log-probabilities make them
large). Only successful answers are stored; a failure is retried by the next run.

Every SQLite failure (a truncated or overwritten file, a lock held past `busy_timeout_s`, a full
disk) surfaces as one `LLMCacheError` that names the file and says what to do; the file is
never deleted or repaired here. What the client does with it is the client's call.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefpipe.core import settings
from prefpipe.llm.errors import LLMCacheError, corrupt_cache, locked_cache, unusable_cache

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

    def __init__(self, path: str | Path | None = None, *, busy_timeout_s: float = 10.0):
        """`busy_timeout_s`: how long a statement waits for another process's lock before failing."""
        self.path = Path(path) if path is not None else settings.llm_cache_path()
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from exc
        try:
            with self._db() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(SCHEMA)
        except LLMCacheError:
            self.conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> "LLMCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the instance lock; an SQLite failure leaves as an LLMCacheError."""
        with self._lock:
            try:
                yield self.conn
            except sqlite3.ProgrammingError:
                raise  # misuse (a closed connection): a bug, not the file's fault
            except sqlite3.DatabaseError as exc:
                raise self._explain(exc) from exc

    def _explain(self, exc: sqlite3.DatabaseError) -> LLMCacheError:
        primary = "_".join(str(getattr(exc, "sqlite_errorname", "")).split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
        if primary in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return locked_cache(self.path, self.busy_timeout_s)
        if primary in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            return corrupt_cache(self.path, str(exc))
        return unusable_cache(self.path, str(exc))

    def _decode(self, key: str, blob: bytes) -> dict[str, Any]:
        """A stored answer; one that no longer decodes means the file was damaged under SQLite."""
        try:
            return _decode(blob)
        except (zlib.error, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise corrupt_cache(self.path, f"the stored answer {key[:12]}... does not decode: {exc}") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        with self._db() as conn:
            row = conn.execute("SELECT payload FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._decode(key, row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Every stored answer among `keys`, in one pass (a fully cached rerun does no per-key query)."""
        unique = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        with self._db() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, payload in conn.execute(f"SELECT key, payload FROM completions WHERE key IN ({marks})", chunk):
                    out[key] = self._decode(key, payload)
        return out

    def put(self, key: str, model: str, data: dict[str, Any]) -> None:
        """Store one answer and commit it at once (autocommit), so a crash loses nothing received."""
        blob = _encode(data)
        with self._db() as conn:
            conn.execute(_INSERT, (key, model, blob, now_iso()))

    def put_many(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
        """Store many answers in one transaction (Batch API ingestion)."""
        stamp = now_iso()
        encoded = [(key, model, _encode(data), stamp) for key, model, data in rows]
        self.executemany(_INSERT, encoded)
        return len(encoded)

    def keys(self) -> set[str]:
        with self._db() as conn:
            return {row[0] for row in conn.execute("SELECT key FROM completions")}

    def __len__(self) -> int:
        with self._db() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement under the instance lock (used by the Batch API bookkeeping)."""
        with self._db() as conn:
            return conn.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement over many rows in one transaction, all or nothing."""
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, [tuple(r) for r in rows])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


def _encode(data: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 1)


def _decode(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8"))
