"""deploy/local-team.sh brings the whole team stack up on this machine (PostgreSQL, Redis, the
webserver, the daemon, two Celery workers, two app replicas over the annotation store in
PostgreSQL): the demo batch's run fills the lakehouse (`prefpipe sql` counts its 999 final
labels), an annotator labels through both replicas into PostgreSQL, a backfill of four batches
runs them concurrently with their steps on the Celery workers, and the script stops everything."""

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
from prefpipe_tests.defs.conftest import make_batch, write_jsonl
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
        assert stack["PREFPIPE_ANNOTATION_STORE"] == f"postgresql://prefpipe@127.0.0.1:{ports['PG_PORT']}/prefpipe_annotations"
        assert "PGPASSWORD" in stack and stack["PGPASSWORD"] not in (team / "team.env").read_text()
        for port in apps:
            assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json()["ok"] is True
        assert httpx.get(f"http://127.0.0.1:{ports['WEB_PORT']}/server_info", timeout=10).status_code == 200

        data = Path(stack["PREFPIPE_DATA_DIR"])
        batches = ("t1", "t2", "t3", "t4")
        bin_dir = Path(sys.executable).parent

        def prefpipe(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
            return subprocess.run([str(bin_dir / "prefpipe"), *args], cwd=PROJECT_ROOT, env=stack, capture_output=True, text=True, timeout=timeout)

        run = prefpipe("run", "--batch", "demo", timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        sql = prefpipe("sql", "select count(*) from final_labels", "--format", "csv")
        assert sql.stdout.split()[-1] == "999", sql.stdout + sql.stderr

        label_through_both_replicas(prefpipe, apps, tmp_path)
        for b in batches:  # only now: the new-batch sensor would run them at once, beside the demo
            make_batch(data, b, n=6)

        backfill = prefpipe("backfill", *(arg for b in batches for arg in ("--batch", b)), "--wait", "--timeout", "900",
                            "--workspace", str(PROJECT_ROOT / "workspace.yaml"), timeout=1000)
        assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]
        assert "every batch succeeded" in backfill.stdout
        counts = prefpipe("sql", "select batch_id, count(*) as n from final_labels where batch_id like 't%' group by 1 order by 1", "--format", "csv")
        assert counts.stdout.split() == ["batch_id,n", "t1,6", "t2,6", "t3,6", "t4,6"]
        import dagster as dg

        os.environ.update({k: stack[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_DB", "PGPASSWORD")})
        with dg.DagsterInstance.get() as instance:
            # the backfill's runs (the new-batch sensor may also have run the new folders once: every run replaces its batch's rows)
            runs = [r for r in instance.get_runs() if r.tags.get("dagster/backfill") and r.tags.get("dagster/partition") in batches]
            assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS} and len(runs) == 4
            spans = sorted(([e.timestamp for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.RUN_START)][0],
                            [e.timestamp for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)][0]) for r in runs)
            assert any(spans[i + 1][0] < spans[i][1] for i in range(3))  # runs overlapped: concurrent, not one after the other
            engine = [e.message for r in runs for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
            assert any("celery" in (m or "").lower() for m in engine), engine[:5]
    finally:
        down = subprocess.run(["bash", str(SCRIPT), "stop"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        shutil.rmtree(team, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert "stopped postgresql" in down.stdout


def label_through_both_replicas(prefpipe, apps: list[int], tmp_path: Path) -> None:
    """Tasks queued and an annotator added by the CLI (into PostgreSQL), a task served by one app
    replica and answered through the other, and the answer read back by the CLI."""
    pairs = tmp_path / "live.jsonl"
    write_jsonl(pairs, [{"pair_id": f"l{i}", "prompt": f"Live prompt {i}", "response_a": f"a{i}", "response_b": f"b{i}"} for i in range(4)])
    assert prefpipe("queue", "add", str(pairs), "--batch", "live", "--per-item", "1").returncode == 0
    added = prefpipe("annotators", "add", "lena")
    assert added.returncode == 0, added.stderr
    token = added.stdout.split()[-1]
    first, second = (httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
                     for port in apps)
    with first, second:
        for _ in range(4):
            task = first.get("/api/tasks/next").json()
            assert second.post(f"/api/tasks/{task['task_id']}/annotations", json={"label": "A>B"}).status_code == 201
        assert first.get("/api/tasks/next").status_code == 204 and second.get("/api/me").json()["answered"] == 4
    out = tmp_path / "live-annotations.jsonl"
    assert prefpipe("annotations", "export", "--batch", "live", "--out", str(out)).returncode == 0
    assert sorted(line.count('"annotator_id": "lena"') for line in out.read_text().splitlines()) == [1, 1, 1, 1]
