"""Shared fixtures.

Tests that need the real data under ../shared/data use the `shared_data` fixture: on a user's clone
(no ../shared) they skip with the reason; under CI=true a missing folder is a failure, so CI can
never pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefpipe_tests.services import postgres, redis_url  # noqa: F401 - real servers, shared by every test folder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    reason = f"real data folder {SHARED_DATA} is not present (it ships beside the project in CI only)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PREFPIPE_DATA_DIR for one test."""
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("PREFPIPE_DATA_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def _fresh_dagster_defs_state():
    """Each test starts and ends with no Dagster defs-state storage in context. An instance a test
    opens registers its storage in a context variable (and one that is never closed never takes
    it back): the next test's Definitions would trip over its dangling weak reference."""
    from dagster._core.storage.defs_state import base

    base._current_storage.set(None)
    yield
    base._current_storage.set(None)
