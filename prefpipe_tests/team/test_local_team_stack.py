"""deploy/local-team.sh brings the whole team stack up on this machine (PostgreSQL, Redis, the
webserver, the daemon, two Celery workers, two app replicas), a run fills the lakehouse, a
backfill of two batches runs them at once with their steps on the Celery workers, and the script
stops everything again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from prefpipe_tests.conftest import PROJECT_ROOT
from prefpipe_tests.defs.conftest import make_batch
from prefpipe_tests.team.conftest import PG_BINS, free_port, unavailable

pytestmark = [pytest.mark.team, pytest.mark.slow]
SCRIPT = PROJECT_ROOT / "deploy" / "local-team.sh"


def load_env(path: Path) -> dict[str, str]:
    """The environment `source $TEAM_DIR/team.env` gives, read through bash itself."""
    out = subprocess.run(["bash", "-c", f"set -a; . {path}; env -0"], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_the_local_team_stack(tmp_path):
    try:
        import dagster_celery  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the [team] packages are not installed (pip install -e '.[team]')")
    if not PG_BINS or shutil.which("redis-server") is None or shutil.which("envsubst") is None:
        unavailable("PostgreSQL, Redis or envsubst is not installed (apt-get install postgresql redis-server gettext-base)")
    team = Path(tempfile.mkdtemp(prefix="prefpipe-team-"))  # not under pytest's root-only folder: the postgres user must reach it
    ports = {"PG_PORT": free_port(), "REDIS_PORT": free_port(), "WEB_PORT": free_port()}
    apps = [free_port(), free_port()]
    env = {**os.environ, "TEAM_DIR": str(team), "PREFPIPE_PYTHON": sys.executable, "APP_PORTS": " ".join(map(str, apps)),
           **{k: str(v) for k, v in ports.items()}}
    try:
        up = subprocess.run(["bash", str(SCRIPT), "start"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        stack = {**os.environ, **load_env(team / "team.env")}
        assert stack["PREFPIPE_WAREHOUSE"].startswith("ducklake:postgresql://prefpipe@127.0.0.1:") and stack["PREFPIPE_EXECUTOR"] == "celery"
        assert "PGPASSWORD" in stack and stack["PGPASSWORD"] not in (team / "team.env").read_text()
        for port in apps:
            assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json()["ok"] is True
        assert httpx.get(f"http://127.0.0.1:{ports['WEB_PORT']}/server_info", timeout=10).status_code == 200

        data = Path(stack["PREFPIPE_DATA_DIR"])
        for b in ("t1", "t2", "t3"):
            make_batch(data, b, n=6)
        bin_dir = Path(sys.executable).parent
        run = subprocess.run([str(bin_dir / "prefpipe"), "run", "--batch", "t1"], cwd=PROJECT_ROOT, env=stack, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        sql = subprocess.run([str(bin_dir / "prefpipe"), "sql", "select count(*) as n from final_labels where batch_id = 't1'", "--format", "csv"],
                             cwd=PROJECT_ROOT, env=stack, capture_output=True, text=True, timeout=120)
        assert sql.stdout.split() == ["n", "6"], sql.stderr

        backfill = subprocess.run([str(bin_dir / "prefpipe"), "backfill", "--batch", "t2", "--batch", "t3", "--wait", "--timeout", "900",
                                   "--workspace", str(PROJECT_ROOT / "workspace.yaml")],
                                  cwd=PROJECT_ROOT, env=stack, capture_output=True, text=True, timeout=1000)
        assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]
        assert "every batch succeeded" in backfill.stdout
        counts = subprocess.run([str(bin_dir / "prefpipe"), "sql", "select batch_id, count(*) as n from final_labels where batch_id like 't%' group by 1 order by 1", "--format", "csv"],
                                cwd=PROJECT_ROOT, env=stack, capture_output=True, text=True, timeout=120)
        assert counts.stdout.split() == ["batch_id,n", "t1,6", "t2,6", "t3,6"]
        import dagster as dg

        os.environ.update({k: stack[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_DB", "PGPASSWORD")})
        with dg.DagsterInstance.get() as instance:
            # the backfill's runs (the new-batch sensor may also have run the new folders once: every run replaces its batch's rows)
            runs = [r for r in instance.get_runs() if r.tags.get("dagster/backfill") and r.tags.get("dagster/partition") in ("t2", "t3")]
            assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS} and len(runs) == 2
            starts = [(r.run_id, [e.timestamp for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.RUN_START)][0],
                       [e.timestamp for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)][0]) for r in runs]
            (_, s1, e1), (_, s2, e2) = starts
            assert s1 < e2 and s2 < e1  # the two runs overlapped: concurrent, not queued one after the other
            engine = [e.message for r in runs for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
            assert any("celery" in (m or "").lower() for m in engine), engine[:5]
    finally:
        down = subprocess.run(["bash", str(SCRIPT), "stop"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        shutil.rmtree(team, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert "stopped postgresql" in down.stdout
