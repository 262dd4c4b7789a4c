"""The persistent answer cache: a rerun or a resumed run never pays twice for the same call.

One SQLite file (settings.llm_cache_path() by default) in WAL mode, so several processes can read
while one writes, and every answer is committed the moment it arrives: a run killed halfway keeps
every answer it received. Answers are stored zlib-compressed (token log-probabilities make them
large). Only successful answers are stored; a failure is retried by the next run.

Batch API answers arrive by the million: they go to a second table, `answers`, one column per
field (the token offsets and log-probabilities as raw little-endian arrays), written and read in
bulk (`put_columns`, `answer_columns`) without a JSON document per answer. `get` and `get_many` read
both tables, so a Batch API answer is an ordinary cache hit afterwards.

Every SQLite failure (a truncated or overwritten file, a lock held past `busy_timeout_s`, a full
disk) surfaces as one `LLMCacheError` that names the file and says what to do; the file is
never deleted or repaired here. What the client does with it is the client's call.
"""

from __future__ import annotations

import base64
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
CREATE INDEX IF NOT EXISTS batch_requests_job ON batch_requests (job_id);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    token_ends BLOB,
    token_logprobs BLOB,
    batch INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""
ANSWER_COLUMNS = ("key", "model", "text", "finish_reason", "prompt_tokens", "completion_tokens", "token_ends", "token_logprobs", "batch")
"""The `answers` table's fields, as `put_columns` takes them and `answer_columns` returns them
(token_ends: little-endian uint32 per token; token_logprobs: little-endian float32; either null)."""
_BULK = 100_000  # keys per json_each(...) statement of the bulk reads

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
                conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: bulk writes of Batch API answers touch many
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
            if row is None:
                found = conn.execute(f"SELECT {', '.join(ANSWER_COLUMNS)} FROM answers WHERE key = ?", (key,)).fetchone()
                return None if found is None else _stored_answer(found)
        return self._decode(key, row[0])

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
            rest = [k for k in unique if k not in out]
            for start in range(0, len(rest), _BULK):
                query = f"SELECT {', '.join('a.' + c for c in ANSWER_COLUMNS)} FROM json_each(?) j JOIN answers a ON a.key = j.value"
                out.update((row[0], _stored_answer(row)) for row in conn.execute(query, (json.dumps(rest[start : start + _BULK]),)))
        return out

    def put_columns(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Store answers given as ANSWER_COLUMNS tuples in one transaction (Batch API ingestion:
        no JSON document, no compression per answer)."""
        stamp = now_iso()
        rows = [(*r, stamp) for r in rows]
        marks = ", ".join("?" * (len(ANSWER_COLUMNS) + 1))
        self.executemany(f"INSERT OR REPLACE INTO answers ({', '.join(ANSWER_COLUMNS)}, created_at) VALUES ({marks})", rows)
        return len(rows)

    def answer_columns(self, keys: list[str]) -> list[tuple[Any, ...]]:
        """ANSWER_COLUMNS rows of the stored answers among `keys`, from both tables, read in bulk
        (an answer stored by `put` is unpacked to the same fields)."""
        out: list[tuple[Any, ...]] = []
        with self._db() as conn:
            for start in range(0, len(keys), _BULK):
                chunk = json.dumps(keys[start : start + _BULK])
                out += conn.execute(f"SELECT {', '.join('a.' + c for c in ANSWER_COLUMNS)} FROM json_each(?) j JOIN answers a ON a.key = j.value", (chunk,))
                for key, payload in conn.execute("SELECT c.key, c.payload FROM json_each(?) j JOIN completions c ON c.key = j.value", (chunk,)):
                    out.append(_answer_row(key, self._decode(key, payload)))
        return out

    def known(self, keys: list[str]) -> set[str]:
        """The keys among `keys` that have a stored answer or are waiting in a Batch API job."""
        found: set[str] = set()
        query = """SELECT j.value FROM json_each(?) j WHERE EXISTS (SELECT 1 FROM completions c WHERE c.key = j.value)
                   OR EXISTS (SELECT 1 FROM answers a WHERE a.key = j.value) OR EXISTS (SELECT 1 FROM batch_requests b WHERE b.key = j.value)"""
        with self._db() as conn:
            for start in range(0, len(keys), _BULK):
                found.update(row[0] for row in conn.execute(query, (json.dumps(keys[start : start + _BULK]),)))
        return found

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
            return {row[0] for row in conn.execute("SELECT key FROM completions UNION SELECT key FROM answers")}

    def __len__(self) -> int:
        with self._db() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM (SELECT key FROM completions UNION SELECT key FROM answers)").fetchone()[0])

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement under the instance lock (used by the Batch API bookkeeping)."""
        with self._db() as conn:
            return conn.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement over many rows in one transaction, all or nothing."""
        self.execute_all([(sql, rows)])

    def execute_all(self, steps: Iterable[tuple[str, Iterable[Iterable[Any]]]]) -> None:
        """Run statements, each over its rows, in one transaction, all or nothing (a Batch API job
        and the keys it carries are recorded together)."""
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


def _encode(data: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 1)


def _decode(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8"))


def _stored_answer(row: tuple[Any, ...]) -> dict[str, Any]:
    """An `answers` row as the dict `Completion.stored()` makes (packed arrays as base64)."""
    _, model, text, finish, prompt, completion, ends, logprobs, batch = row
    pack = lambda b: None if b is None else base64.b64encode(b).decode("ascii")  # noqa: E731
    return {"model": model, "text": text, "finish_reason": finish, "prompt_tokens": prompt, "completion_tokens": completion,
            "token_ends": pack(ends), "token_logprobs": pack(logprobs), "batch": bool(batch)}


def _answer_row(key: str, data: dict[str, Any]) -> tuple[Any, ...]:
    """A `completions` answer as ANSWER_COLUMNS (its base64 arrays back to raw bytes)."""
    unpack = lambda s: None if s is None else base64.b64decode(s)  # noqa: E731
    return (key, data.get("model"), data.get("text"), data.get("finish_reason"), data.get("prompt_tokens"), data.get("completion_tokens"),
            unpack(data.get("token_ends")), unpack(data.get("token_logprobs")), int(bool(data.get("batch"))))
