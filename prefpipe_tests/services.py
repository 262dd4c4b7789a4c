"""Real PostgreSQL and Redis servers for the tests, started by the tests themselves from the
Debian packages (`apt-get install postgresql redis-server`; `.ci/run` installs them) on loopback,
in temporary folders, and stopped at the end of the session. Where the servers or the `[team]`
packages are not installed the tests that need them skip with the reason; under CI=true that is
a failure instead. The fixtures are registered in prefpipe_tests/conftest.py, so the annotation
store's tests (run on both backends) and the team tests share one server."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    data: Path | None = None
    """The server's data folder, so a test can stop and start it (`restart`)."""
    bin_dir: Path | None = None
    options: str = ""

    def url(self, db: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def connect(self, db: str = "postgres"):  # noqa: ANN201 - a psycopg connection, imported lazily
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname=db, autocommit=True)

    def pg_ctl(self, *args: str) -> None:
        assert self.data is not None and self.bin_dir is not None
        subprocess.run(as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]), check=True, capture_output=True)

    def stop(self) -> None:
        """Stop the server at once (`immediate`: like a crash, clients see their connections drop)."""
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        assert self.data is not None
        self.pg_ctl("-l", str(self.data.parent / "log"), "-w", "-o", self.options, "start")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname="postgres", autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[Postgres]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the [team] packages are not installed (pip install -e '.[team]')")
    if not PG_BINS or shutil.which("runuser") is None and os.geteuid() == 0:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = PG_BINS[-1]
    root = Path(tempfile.mkdtemp(prefix="prefpipe-pg-"))  # not under pytest's root-only folder: the postgres user must reach it
    data, password = root / "data", secrets.token_urlsafe(16)
    (root / "pw").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    subprocess.run(as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "prefpipe", f"--pwfile={root / 'pw'}", "-A", "scram-sha-256"]),
                   check=True, capture_output=True)
    port = free_port()
    server = Postgres("127.0.0.1", port, "prefpipe", password, data=data, bin_dir=bin_dir,
                      options=f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off")
    server.start()
    try:
        yield server
    finally:
        subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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


