"""The team tests' fixtures: the PostgreSQL and Redis servers come from prefpipe_tests/services.py
(registered for every test in prefpipe_tests/conftest.py); a fresh lakehouse per test is here."""

from __future__ import annotations

import secrets

import pytest

from prefpipe_tests.services import PG_BINS, Postgres, as_postgres, free_port, unavailable

__all__ = ["PG_BINS", "Postgres", "as_postgres", "free_port", "unavailable"]


@pytest.fixture
def lakehouse(postgres: Postgres, tmp_path) -> str:
    """A fresh lakehouse: its own catalog database and data folder."""
    db = postgres.create_database(f"lake_{secrets.token_hex(4)}")
    return f"ducklake:{postgres.url(db)}?data_path={tmp_path / 'lake'}"
