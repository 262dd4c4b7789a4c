"""Another process holding the DuckDB warehouse: a run waits for it, and past the wait it fails
with a message that says the warehouse is held, by which process, and which file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from prefpipe_tests.conftest import PROJECT_ROOT
from prefpipe_tests.defs.conftest import make_batch

BIN = Path(sys.executable).parent


def test_a_run_blocked_by_a_reader_names_the_file_and_the_process(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data / "guidelines")
    make_batch(data, "mini")
    env = {**os.environ, "PREFPIPE_DATA_DIR": str(data), "DAGSTER_HOME": str(tmp_path / "home"), "PREFPIPE_WAREHOUSE_LOCK_WAIT_S": "2"}
    assert subprocess.run([str(BIN / "prefpipe"), "run", "--batch", "mini"], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=600).returncode == 0
    warehouse = data / "warehouse.duckdb"
    reader = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys, time\ncon = duckdb.connect({str(warehouse)!r}, read_only=True)\nprint('open', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        done = subprocess.run([str(BIN / "prefpipe"), "run", "--batch", "mini"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert done.returncode == 1
    assert f"{warehouse}: the warehouse is held by process {reader.pid}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
