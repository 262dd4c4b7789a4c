"""Which warehouse prefpipe uses, from PREFPIPE_WAREHOUSE, and how to open it.

- the embedded default, one DuckDB file (`data/warehouse.duckdb`, or `duckdb:///ABS/PATH`, or a
  plain path): one writing process at a time, for one person on a laptop;
- a lakehouse for a team, `ducklake:postgresql://USER[:PASS]@HOST:PORT/DB?data_path=/shared/lake/`:
  DuckLake's catalog in PostgreSQL and Parquet data files under a shared folder (or object store),
  written by many processes on many machines at once, queried with the same DuckDB SQL. Every
  commit is a snapshot (`ducklake_snapshots('lake')`), which is also the published datasets' audit
  trail.

The password may be in the URL (from the environment only) or in PGPASSWORD; no message prefpipe
prints contains it.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import duckdb

from prefpipe.errors import PrefpipeError

WAREHOUSE_ENV = "PREFPIPE_WAREHOUSE"
LAKE = "lake"
"""The catalog name the lakehouse is attached under (so `lake.main.final_labels` is a table)."""


class WarehouseConfigError(PrefpipeError):
    """PREFPIPE_WAREHOUSE names no warehouse prefpipe can open (the message says why)."""


class LakehouseNotCreated(WarehouseConfigError):
    """Read-only access to a lakehouse whose catalog nobody has written yet: it has no tables."""


@dataclass(frozen=True)
class WarehouseTarget:
    kind: str  # "duckdb" | "ducklake"
    path: Path | None = None
    catalog: str = ""  # libpq keywords of the lakehouse catalog (may hold the password: never print it)
    data_path: str = ""
    display: str = ""  # what messages show: no password

    @property
    def is_lakehouse(self) -> bool:
        return self.kind == "ducklake"

    def exists(self) -> bool:
        """A DuckDB file that is not there yet has no tables; a lakehouse always has a catalog."""
        return self.is_lakehouse or (self.path is not None and self.path.is_file())


def parse_target(spec: str | Path) -> WarehouseTarget:
    """A WarehouseTarget from a path, `duckdb:///PATH` or `ducklake:postgresql://...?data_path=...`."""
    text = str(spec)
    if text.startswith("duckdb://"):
        text = text[len("duckdb://"):]
    if not text.startswith("ducklake:"):
        path = Path(text).expanduser().resolve()
        return WarehouseTarget("duckdb", path=path, display=str(path))
    url = urlsplit(text[len("ducklake:"):])
    if url.scheme not in ("postgresql", "postgres") or not url.hostname or not url.path.strip("/"):
        raise WarehouseConfigError(f"{WAREHOUSE_ENV}: expected ducklake:postgresql://USER@HOST:PORT/DB?data_path=DIR, got a {url.scheme or 'bare'} URL")
    data_path = (parse_qs(url.query).get("data_path") or [""])[0]
    if not data_path:
        raise WarehouseConfigError(f"{WAREHOUSE_ENV}: the lakehouse needs ?data_path=DIR (the shared folder or bucket for its Parquet files)")
    if "://" not in data_path:
        data_path = str(Path(data_path).expanduser().resolve())
    data_path = data_path.rstrip("/") + "/"
    parts = {"dbname": url.path.strip("/"), "host": url.hostname, "port": str(url.port or 5432)}
    if url.username:
        parts["user"] = unquote(url.username)
    if url.password:
        parts["password"] = unquote(url.password)
    catalog = " ".join(f"{k}={v}" for k, v in parts.items())
    shown = f"ducklake:postgresql://{parts.get('user', '')}@{parts['host']}:{parts['port']}/{parts['dbname']} (data {data_path})"
    return WarehouseTarget("ducklake", catalog=catalog, data_path=data_path, display=shown)


def configured_target(default: Path) -> WarehouseTarget:
    """PREFPIPE_WAREHOUSE when set, else the DuckDB file `default`."""
    return parse_target(os.environ.get(WAREHOUSE_ENV) or default)


def _extension(package: str, name: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise WarehouseConfigError(f"{WAREHOUSE_ENV}: the lakehouse needs the {package.replace('_', '-')} package: pip install -e '.[team]'")
    found = sorted(Path(spec.origin).parent.glob(f"extensions/*/{name}.duckdb_extension"))
    if not found:
        raise WarehouseConfigError(f"{package}: no {name}.duckdb_extension inside the package")
    return str(found[-1])


def open_lakehouse(target: WarehouseTarget, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lakehouse attached as `lake` and in use; the extensions come from
    their PyPI packages (nothing is downloaded)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute(f"LOAD '{_extension('duckdb_extension_postgres_scanner', 'postgres_scanner')}'")
        con.execute(f"LOAD '{_extension('duckdb_extension_ducklake', 'ducklake')}'")
        options = f"DATA_PATH '{target.data_path}'" + (", READ_ONLY" if read_only else "")
        for attempt in range(6):  # processes that open a new lakehouse at once race to create its catalog tables
            try:
                con.execute(f"ATTACH 'ducklake:postgres:{target.catalog}' AS {LAKE} ({options})")
                break
            except duckdb.Error as exc:
                if attempt == 5 or "already exists" not in str(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))
        con.execute(f"USE {LAKE}")
    except duckdb.Error as exc:
        con.close()
        if read_only and "creating a new DuckLake is explicitly disabled" in str(exc):
            raise LakehouseNotCreated(f"{WAREHOUSE_ENV}: the lakehouse {target.display} has no catalog yet (a run creates it)") from None
        reason = str(exc).replace(target.catalog, target.display).splitlines()[0]
        if "password=" in reason:
            reason = "the catalog refused the connection"
        raise WarehouseConfigError(f"{WAREHOUSE_ENV}: cannot open the lakehouse {target.display}: {reason}") from None
    return con
