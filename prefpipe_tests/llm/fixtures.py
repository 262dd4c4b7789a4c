"""Shared fixtures of the LLM-layer tests: a real scripted server on 127.0.0.1 (an ephemeral
port, in a thread), a small guidelines folder, and a client pointed at both with a fresh cache.

The conftest.py of llm/, judge/ and generation/ offer the fixtures to their tests; `make_client` and
`write_guidelines` are plain helpers to import.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefpipe.core.guidelines import Guidelines, load_guidelines
from prefpipe.llm.client import LLMClient
from prefpipe.testing.scripted_server import ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


def write_guidelines(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guidelines.md").write_text("# Guidelines\nPrefer the helpful, correct, harmless, concise response.\n", encoding="utf-8")
    rubric = {"dimensions": [{"name": "helpfulness", "weight": 0.6, "description": "Does what is asked."}, {"name": "correctness", "weight": 0.4, "description": "Is right."}]}
    (folder / "rubric.json").write_text(json.dumps(rubric), encoding="utf-8")
    return folder


@pytest.fixture
def guidelines(tmp_path: Path) -> Guidelines:
    return load_guidelines(write_guidelines(tmp_path / "guidelines"))


def make_client(server: ScriptedServer, cache: Path, **overrides: Any) -> LLMClient:
    settings: dict[str, Any] = {"base_url": server.base_url, "api_key": "EMPTY", "cache_path": str(cache), "backoff_initial_s": 0.01, "timeout_s": 5.0}
    settings.update(overrides)
    return LLMClient(**settings)


@pytest.fixture
def client(server: ScriptedServer, tmp_path: Path) -> Iterator[LLMClient]:
    made = make_client(server, tmp_path / "cache.sqlite3")
    yield made
    made.close()
