"""`python -m prefpipe.bench team-backfill`: one backfill of many batches of imported pairs, run by the
same Dagster machinery against the DuckDB file (its runs queued one at a time: the file takes one
writing process) and against the lakehouse (--concurrent runs at once), on the same machine in the
same run of the benchmark.

Both sides get a Dagster instance in PostgreSQL (deploy/dagster.yaml: QueuedRunCoordinator, run
monitoring; the guideline automation off, see instance_yaml), a `dagster-daemon` that runs the
backfill, the default run launcher (a process per run), the in_process executor in every run, and
the same seeded batches; only the warehouse and max_concurrent_runs differ. A side's time runs from
the backfill's creation to the end of its last run, and is reported only when every run succeeded
and every table holds each batch's rows exactly.
The benchmark starts its own PostgreSQL (initdb into a temporary folder, a free loopback port) and
removes everything it made when it ends, on failure or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prefpipe.bench import synthetic
from prefpipe.errors import PrefpipeError
from prefpipe.testing.postgres import Postgres, postgres_server, run_checked

if TYPE_CHECKING:
    import dagster as dg

FIGURE = ("{batches} batches of {pairs:,} imported pairs, backfilled at once: wall time with the lakehouse and "
          "{concurrent} concurrent runs against the DuckDB file with its one-at-a-time queue, same machine, same run")
PROJECT = Path(__file__).resolve().parents[2]
DEPLOY_YAML = PROJECT / "deploy" / "dagster.yaml"
GUIDELINES = PROJECT / "data" / "guidelines"
BIN = Path(sys.executable).parent
SEED = 20240611
ANNOTATORS = 40
LABELS_PER_PAIR = 3
EXACT = {"prompts": 1, "response_pairs": 1, "ai_labels": 1, "routing": 1, "final_labels": 1, "human_annotations": LABELS_PER_PAIR}
"""Rows a batch must hold in these tables, per pair; every other table must match between the two sides."""
EXECUTOR = "in_process"
WORKSPACE = "load_from:\n  - python_module:\n      module_name: prefpipe.definitions\n      location_name: prefpipe\n"


class BenchError(PrefpipeError):
    """The benchmark could not measure (a server did not start, a run failed, a count is wrong)."""


# --- the batches ---------------------------------------------------------------------------------


def write_batch(folder: Path, batch_id: str, pairs: int, seed: int) -> None:
    """One batch of imported pairs in the demo batch's layout: two short responses a prompt, an external
    judge's verdict with a confidence for each pair, three people's labels a pair; a run calls no LLM."""
    synthetic.write_batch(folder, batch_id, synthetic.BatchShape(pairs, annotators=ANNOTATORS, labels_per_pair=LABELS_PER_PAIR), seed)


# --- one side: a Dagster instance, its daemon, one backfill --------------------------------------


@dataclass(frozen=True)
class Side:
    key: str
    label: str
    max_runs: int
    lakehouse: bool


def instance_yaml(pg: Postgres, db: str, max_runs: int) -> str:
    """deploy/dagster.yaml with this server and database filled in and `max_runs` runs at once (the
    password stays `env: PGPASSWORD`), and without the guideline automation: with runs at once it
    requested relabel runs of batches the backfill had just labelled under unchanged guidelines,
    which would share the machine with the runs being timed."""
    import yaml

    if not DEPLOY_YAML.is_file():
        raise BenchError(f"{DEPLOY_YAML} is missing: run the benchmark from a prefpipe checkout")
    config = yaml.safe_load(DEPLOY_YAML.read_text(encoding="utf-8"))
    config["storage"]["postgres"]["postgres_db"].update(hostname=pg.host, port=pg.port, username=pg.user, db_name=db)
    config["run_coordinator"]["config"]["max_concurrent_runs"] = max_runs
    config["auto_materialize"] = {"enabled": False, "use_sensors": False}  # no AssetDaemon: it evaluates the automation sensor
    return yaml.safe_dump(config, sort_keys=False)


def side_env(data: Path, home: Path, pg: Postgres, warehouse: str | None) -> dict[str, str]:
    """This process's environment without any prefpipe, Dagster or PostgreSQL setting of the caller's,
    plus the side's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFPIPE_", "DAGSTER_")) and k not in ("PGPASSWORD", "REDIS_URL")}
    env.update(PREFPIPE_DATA_DIR=str(data), DAGSTER_HOME=str(home), PGPASSWORD=pg.password, PREFPIPE_EXECUTOR=EXECUTOR,
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    if warehouse:
        env["PREFPIPE_WAREHOUSE"] = warehouse
    return env


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set variables in this process for a while (the instance config reads PGPASSWORD here)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def dagster_daemon(env: dict[str, str], workspace: Path, log: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` in a session of its own; on exit that whole process group (the daemon,
    its code server, the run workers) is stopped."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env=env, cwd=log.parent,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass


def wait_for_daemon(instance: dg.DagsterInstance, proc: subprocess.Popen, log: Path, timeout_s: float = 180.0) -> None:
    """Until the backfill and run-queue loops have checked in, so the clock never counts the daemon's start."""
    deadline, since = time.monotonic() + timeout_s, time.time() - 1
    while True:
        beats = instance.get_daemon_heartbeats()
        if all(k in beats and beats[k].timestamp >= since for k in ("BACKFILL", "QUEUED_RUN_COORDINATOR")):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise BenchError(f"dagster-daemon {'exited' if proc.poll() is not None else 'did not check in'}; its log ends:\n{tail}")
        time.sleep(0.5)


def launch(env: dict[str, str], batch_ids: list[str], workspace: Path, cwd: Path) -> str:
    """`prefpipe backfill --batch ...`, as a user launches one; returns the backfill id."""
    args = [x for b in batch_ids for x in ("--batch", b)]
    done = run_checked([str(BIN / "prefpipe"), "backfill", *args, "--workspace", str(workspace)], "prefpipe backfill", BenchError, env=env, cwd=cwd)
    found = re.search(r"launched backfill ([A-Za-z0-9_-]+)", done.stdout)
    if found is None:
        raise BenchError(f"prefpipe backfill printed no backfill id: {done.stdout[-1000:]}")
    return found.group(1)


def timings(instance: dg.DagsterInstance, backfill_id: str, batch_ids: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The backfill's wall time and its runs, and every problem that makes the time meaningless."""
    import dagster as dg

    from prefpipe.cli.backfill import BACKFILL_TAG

    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise BenchError(f"no backfill {backfill_id} in the instance")
    records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
    runs, problems = [], []
    for r in sorted(records, key=lambda r: r.start_time or float("inf")):
        run = r.dagster_run
        runs.append({"batch": run.tags.get("dagster/partition"), "run_id": run.run_id, "status": run.status.value,
                     "started_s": None if r.start_time is None else r.start_time - backfill.backfill_timestamp,
                     "run_s": None if r.start_time is None or r.end_time is None else r.end_time - r.start_time,
                     "ended_s": None if r.end_time is None else r.end_time - backfill.backfill_timestamp})
        if run.status != dg.DagsterRunStatus.SUCCESS:
            failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            why = "; ".join(f"{e.step_key}: {e.dagster_event.step_failure_data.error.message.strip().splitlines()[0]}" for e in failures[:3])
            problems.append(f"run {run.run_id[:8]} of {run.tags.get('dagster/partition')} ended {run.status.value}" + (f" ({why})" if why else ""))
    per_batch = [run["batch"] for run in runs]
    if sorted(per_batch) != sorted(batch_ids):
        problems.append(f"expected one run per batch, got runs for {sorted(per_batch)}")
    others = instance.get_runs_count() - len(runs)
    if others:
        problems.append(f"{others} run(s) outside the backfill shared the machine (a sensor or schedule started them)")
    ended = [run["ended_s"] for run in runs if run["ended_s"] is not None]
    wall = max(ended) if ended and len(ended) == len(runs) else float("nan")
    created = [(r.create_timestamp if r.create_timestamp.tzinfo else r.create_timestamp.replace(tzinfo=dt.UTC)).timestamp()
               for r in records]
    picked = min(created) - backfill.backfill_timestamp if created else float("nan")  # the daemon's backfill loop ticks every 30 s
    return {"wall_s": wall, "picked_up_s": picked, "after_pickup_s": wall - picked, "runs": runs}, problems


def check_counts(counts: Any, batch_ids: list[str], pairs: int) -> list[str]:
    """Every table in EXACT holds each batch's rows exactly."""
    problems = []
    for table, per_pair in EXACT.items():
        got = {b: int(counts.loc[table, b]) if table in counts.index else 0 for b in batch_ids}
        wrong = {b: n for b, n in got.items() if n != pairs * per_pair}
        if wrong:
            problems.append(f"{table}: expected {pairs * per_pair:,} rows a batch, got {wrong}")
    return problems


def measure(side: Side, pg: Postgres, batches: Path, batch_ids: list[str], pairs: int, workspace: Path, folder: Path,
            timeout_s: float) -> dict[str, Any]:
    """Give the side its own instance, warehouse and data folder, backfill every batch once, check the
    outcome and return the figures; BenchError when any run or count is wrong."""
    import dagster as dg

    from prefpipe.cli.backfill import watch_backfill
    from prefpipe.core import settings
    from prefpipe.core.warehouse import connect_for_write, row_counts

    data, home = folder / "data", folder / "dagster_home"
    shutil.copytree(GUIDELINES, data / "guidelines")
    shutil.copytree(batches, data / "batches")
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml(pg, pg.create_database(f"dagster_{side.key}"), side.max_runs), encoding="utf-8")
    warehouse = pg.lakehouse(pg.create_database(f"lake_{side.key}"), folder / "lake") if side.lakehouse else None
    if warehouse:
        (folder / "lake").mkdir()
    env = side_env(data, home, pg, warehouse)
    with environ(PGPASSWORD=pg.password), dg.DagsterInstance.from_config(str(home)) as instance:  # creates the instance's tables once
        if warehouse:
            connect_for_write(warehouse, {}).close()  # the lakehouse catalog, once: runs that start together would race to create it
        instance.add_dynamic_partitions("batches", batch_ids)  # registered first: the new-batch sensor leaves them to the backfill
        with dagster_daemon(env, workspace, folder / "daemon.log") as proc:
            wait_for_daemon(instance, proc, folder / "daemon.log")
            load_before = os.getloadavg()[0]
            backfill_id = launch(env, batch_ids, workspace, folder)
            print(f"{side.label}: backfill {backfill_id} of {len(batch_ids)} batches, max_concurrent_runs {side.max_runs}", flush=True)
            finished = watch_backfill(instance, backfill_id, timeout=timeout_s, poll=1.0)
            figures, problems = timings(instance, backfill_id, batch_ids)
            figures["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # others' work on the machine shows here
        if not finished and not problems:
            problems.append(f"the backfill did not finish within {timeout_s:.0f} s")
        counts = row_counts(batch_ids, database=warehouse or str(data / settings.WAREHOUSE_FILE))
    problems += check_counts(counts, batch_ids, pairs)
    if problems:
        raise BenchError(f"{side.label}: no time reported, because\n  " + "\n  ".join(problems) + f"\n(logs under {folder})")
    return {"label": side.label, "max_concurrent_runs": side.max_runs, "backfill_id": backfill_id, **figures,
            "rows": {t: {b: int(n) for b, n in row.items()} for t, row in counts.iterrows()}}


# --- the benchmark -------------------------------------------------------------------------------


def machine(pg: Postgres | None = None) -> dict[str, Any]:
    import dagster
    import duckdb

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "ram_gib": round(ram, 1), "python": platform.python_version(), "duckdb": duckdb.__version__,
            "dagster": dagster.__version__, "postgresql": pg.version if pg else None, "platform": platform.platform()}


def run(batches: int, pairs: int, concurrent: int, workdir: Path, *, seed: int = SEED, timeout_s: float = 4 * 3600.0) -> dict[str, Any]:
    """Make the batches, start PostgreSQL, measure the DuckDB file side and then the lakehouse side,
    and return the figures (JSON-ready). Raises BenchError rather than return a time for a failed run."""
    try:
        import dagster_postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"the [team] packages are not installed (pip install -e '.[team]'): {exc}") from exc
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    batch_ids = [f"bench{i:02d}" for i in range(batches)]
    for i, b in enumerate(batch_ids):
        write_batch(workdir / "batches" / b, b, pairs, seed + i)
    workspace = workdir / "workspace.yaml"
    workspace.write_text(WORKSPACE, encoding="utf-8")
    sides = (Side("duckdb_file", "DuckDB file", 1, False), Side("lakehouse", "lakehouse (DuckLake, catalog in PostgreSQL)", concurrent, True))
    with postgres_server() as pg:
        results = {s.key: measure(s, pg, workdir / "batches", batch_ids, pairs, workspace, workdir / s.key, timeout_s) for s in sides}
        host = machine(pg)
    base, lake = results["duckdb_file"], results["lakehouse"]
    mismatched = [t for t in base["rows"] if base["rows"][t] != lake["rows"].get(t)]
    if mismatched:
        raise BenchError(f"the two sides' tables differ for the same batches: {', '.join(mismatched)}")
    return {"figure": FIGURE.format(batches=batches, pairs=pairs, concurrent=concurrent), "batches": batches, "pairs": pairs,
            "concurrent": concurrent, "seed": seed, "executor": EXECUTOR, "machine": host, **results,
            "ratio": base["wall_s"] / lake["wall_s"], "ratio_after_pickup": base["after_pickup_s"] / lake["after_pickup_s"]}


def report(result: dict[str, Any]) -> str:
    """The figures as printed."""
    m = result["machine"]
    lines = [f"team-backfill: {result['figure']}"]
    for key in ("duckdb_file", "lakehouse"):
        side = result[key]
        mean = float(np.mean([r["run_s"] for r in side["runs"]]))
        lines.append(f"  {side['label'] + ', ' + str(side['max_concurrent_runs']) + ' run(s) at once:':<62} {side['wall_s']:7.1f} s wall "
                     f"(picked up by the daemon after {side['picked_up_s']:.1f} s, {side['after_pickup_s']:.1f} s from then; "
                     f"{len(side['runs'])} runs of {mean:.1f} s on average; load average {side['load_average'][0]:.1f} -> {side['load_average'][1]:.1f})")
    lines += [
        (f"  ratio: the DuckDB file takes {result['ratio']:.2f}x the lakehouse's wall time "
         f"({result['ratio_after_pickup']:.2f}x from the daemon's pickup, which leaves out the 0-30 s wait for its backfill loop)"),
        (f"machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, python {m['python']}, duckdb {m['duckdb']}, dagster {m['dagster']}, "
         f"PostgreSQL {m['postgresql']}, {m['platform']}"),
        (f"how: both sides a Dagster instance in PostgreSQL (deploy/dagster.yaml, QueuedRunCoordinator; guideline automation off), dagster-daemon, the default "
         f"run launcher (a process per run), the {result['executor']} executor in every run, the same {result['batches']} seeded batches "
         f"({result['pairs']:,} pairs, {LABELS_PER_PAIR} imported labels a pair); timed from the backfill's creation to its last run's end"),
        "checked: every run succeeded, one run per batch and no other run, "
        + ", ".join(EXACT) + " hold each batch's rows exactly, and every table matches between the two sides",
    ]
    return "\n".join(lines)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m prefpipe.bench team-backfill", description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=8, help="batches in the backfill (default 8)")
    ap.add_argument("--pairs", type=int, default=25_000, help="imported pairs a batch (default 25,000)")
    ap.add_argument("--concurrent", type=int, default=2, help="runs at once against the lakehouse (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (batches, data, logs) and print where it is")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    ap.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds one side's backfill may take (default 4 hours)")
    args = ap.parse_args(argv)
    if min(args.batches, args.pairs, args.concurrent) < 1:
        ap.error("--batches, --pairs and --concurrent must be at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="prefpipe-team-backfill-"))
    before = signal.signal(signal.SIGTERM, _interrupted)  # a kill cleans up as Ctrl-C does
    try:
        result = run(args.batches, args.pairs, args.concurrent, workdir, timeout_s=args.timeout)
    except PrefpipeError as exc:  # BenchError, or prefpipe's own (a backfill it cannot follow)
        print(f"team-backfill FAILED: {exc}" + ("" if args.keep else "\n(rerun with --keep to keep the logs)"), file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"team-backfill interrupted ({exc or 'Ctrl-C'}): stopped everything it started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, before)
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0
