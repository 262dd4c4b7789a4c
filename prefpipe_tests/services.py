"""Real PostgreSQL and Redis servers for the tests, started by the tests themselves from the
Debian packages (`apt-get install postgresql redis-server`; `.ci/run` installs them) on loopback,
in temporary folders, and stopped at the end of the session. Where the servers or the `[team]`
packages are not installed the tests that need them skip with the reason; under CI=true that is
a failure instead. The fixtures are registered in prefpipe_tests/conftest.py, so the annotation
store's tests (run on both backends) and the team tests share one server."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefpipe.testing.postgres import Postgres, PostgresUnavailable, as_postgres, free_port, pg_bin_dir, postgres_server

__all__ = ["PG_BINS", "Postgres", "as_postgres", "free_port", "postgres", "redis_url", "require_postgres", "unavailable"]

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def require_postgres(*modules: str) -> None:
    """Skip (fail under CI) unless psycopg, `modules` of the [team] packages and Debian's
    PostgreSQL are installed."""
    missing = [name for name in ("psycopg", *modules) if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"the [team] packages are not installed ({', '.join(missing)}; pip install -e '.[team]')")
    if pg_bin_dir() is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One server for the session (fsync off: test data); `postgres.stop()` / `start()` restart it."""
    require_postgres()
    try:
        with postgres_server(fsync=False) as server:
            yield server
    except PostgresUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        unavailable("Redis is not installed (apt-get install redis-server)")
    root = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("redis-server did not answer within 30 s")
        time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


