"""The answer cache on a real SQLite file: WAL, committed per answer, readable by a second connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from prefpipe.core import settings
from prefpipe.llm.cache import LLMCache


def test_answers_are_committed_at_once_and_seen_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    writer = LLMCache(path)
    writer.put("k1", "m", {"text": "hello", "tokens": ["hel", "lo"]})
    # a second, independent connection sees it without the writer closing or committing again
    other = sqlite3.connect(path)
    assert other.execute("SELECT key, model FROM completions").fetchall() == [("k1", "m")]
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert LLMCache(path).get("k1") == {"text": "hello", "tokens": ["hel", "lo"]}


def test_get_many_and_missing_keys(tmp_path: Path) -> None:
    cache = LLMCache(tmp_path / "c.sqlite3")
    cache.put_many((f"k{i}", "m", {"i": i}) for i in range(1200))
    found = cache.get_many([f"k{i}" for i in range(0, 1300, 2)])
    assert len(found) == 600 and found["k1198"] == {"i": 1198}
    assert cache.get("nope") is None and len(cache) == 1200


def test_default_path_is_under_the_data_dir(data_dir: Path) -> None:
    cache = LLMCache()
    assert cache.path == settings.llm_cache_path() and cache.path.parent == data_dir
