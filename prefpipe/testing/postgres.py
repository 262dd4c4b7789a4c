"""A PostgreSQL server of its own, for the tests and benchmarks: a fresh cluster from Debian's
packages (`apt-get install postgresql`) in a temporary folder, on a free loopback port, with a
generated password, stopped and removed at the end. PostgreSQL refuses to run as root, so as root
its tools run as the `postgres` user (and the folder is one that user can reach)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefpipe.errors import PrefpipeError


class PostgresUnavailable(PrefpipeError):
    """PostgreSQL is not installed here, or its server would not start (the message says which)."""


def pg_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found and (found[-1] / "initdb").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def run_checked(cmd: list[str], what: str, error: type[PrefpipeError] = PostgresUnavailable, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command; `error` naming it, its exit code and the end of its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    if done.returncode != 0:
        raise error(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")
    return done


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    data: Path
    bin_dir: Path
    options: str
    version: str

    def url(self, db: str, driver: str = "postgresql") -> str:
        """The database's URL with the password (for a child process's environment: never print it)."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def lakehouse(self, db: str, data_path: Path) -> str:
        """The PREFPIPE_WAREHOUSE of a lakehouse with its catalog in `db` (the password from PGPASSWORD)."""
        return f"ducklake:postgresql://{self.user}@{self.host}:{self.port}/{db}?data_path={data_path}"

    def connect(self, db: str = "postgres") -> Any:
        """A psycopg connection in autocommit mode."""
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname=db, autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name

    def start(self) -> None:
        run_checked(as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / "server.log"),
                              "-w", "-o", self.options, "start"]), "pg_ctl start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; `immediate` is like a crash: clients see their connections drop."""
        run_checked(as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]), "pg_ctl stop")


@contextmanager
def postgres_server(*, fsync: bool = True) -> Iterator[Postgres]:
    """A started server on 127.0.0.1; `fsync=False` for tests, whose data may be lost in a power cut."""
    bin_dir = pg_bin_dir()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        raise PostgresUnavailable("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="prefpipe-pg-"))  # not under a private folder: the postgres user must reach it
    data, pwfile, password = root / "data", root / "pw", secrets.token_urlsafe(16)
    try:
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(pwfile, "postgres")
        run_checked(as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "prefpipe", f"--pwfile={pwfile}", "-A", "scram-sha-256"]), "initdb")
        pwfile.unlink()
        port = free_port()
        said = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False).stdout
        version = (re.findall(r"\(PostgreSQL\) (\S+)", said) or [said.strip()])[0]
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200" + ("" if fsync else " -c fsync=off")
        server = Postgres("127.0.0.1", port, "prefpipe", password, data, bin_dir, options, version)
        server.start()
        try:
            yield server
        finally:
            subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
