"""`python -m prefpipe.bench team`: the team deployment's figures, measured in one run on this machine.

1. A backfill of `--batches` batches of `--pairs` imported pairs: the lakehouse (DuckLake, catalog
   in PostgreSQL) with `--concurrent` runs at once against the DuckDB file's one-at-a-time queue
   (prefpipe.bench.team_backfill: same Dagster machinery, same batches, both sides checked row
   for row before a time is reported).
2. The annotation load, `--annotators` x `--labels` through two app replicas over one PostgreSQL
   store, beside the same load on the SQLite file (one app, the laptop default; and two apps over
   the one file): p50/p95/p99 of every call, and lost or duplicated answers (none allowed: the run
   fails if any). Each load gets a fresh store.

The benchmark starts its own PostgreSQL (a temporary cluster on a free loopback port) and removes
everything it made when it ends.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from prefpipe.bench import team_backfill
from prefpipe.bench.annotate_load import LoadResult, run_load
from prefpipe.errors import PrefpipeError
from prefpipe.testing.postgres import postgres_server


def annotation_loads(annotators: int, labels: int, workdir: Path, machine: dict[str, Any]) -> list[LoadResult]:
    """The same closed-loop load on SQLite (1 and 2 apps over the file) and PostgreSQL (2 apps);
    records the PostgreSQL version in `machine`."""
    results = [run_load(workdir / "sqlite-1", annotators, labels, measure_floor=False, replicas=1),
               run_load(workdir / "sqlite-2", annotators, labels, measure_floor=False, replicas=2)]
    with postgres_server() as pg:
        machine["postgresql"] = pg.version
        db = pg.create_database(f"store_{secrets.token_hex(4)}")
        url = f"postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{db}"
        results.append(run_load(workdir / "postgresql-2", annotators, labels, measure_floor=False, replicas=2, store=url))
    return results


def load_summary(result: LoadResult) -> dict[str, Any]:
    every = [v for values in result.latencies_ms.values() for v in values]
    stats = result.stats(every)
    return {"store": result.store, "replicas": result.replicas, "calls": len(every), "wall_s": round(result.wall_s, 2),
            "p50_ms": round(stats["p50"], 1), "p95_ms": round(stats["p95"], 1), "p99_ms": round(stats["p99"], 1),
            "problems": result.problems}


def load_report(loads: list[dict[str, Any]]) -> str:
    base = loads[0]
    lines = [f"{'annotation load':<26} {'calls':>6} {'wall s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}  p50/p95/p99 vs SQLite x1  integrity"]
    for load in loads:
        name = f"{load['store']} x{load['replicas']} app{'s' if load['replicas'] > 1 else ''}"
        ratio = "/".join(f"{load[k] / base[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms"))
        ok = "0 lost, 0 duplicated" if not load["problems"] else "; ".join(load["problems"][:3])
        lines.append(f"{name:<26} {load['calls']:>6} {load['wall_s']:>7.1f} {load['p50_ms']:>7.1f} {load['p95_ms']:>7.1f} "
                     f"{load['p99_ms']:>7.1f}  {ratio:<24}  {ok}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench team", description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=25_000, help="imported pairs per batch")
    parser.add_argument("--concurrent", type=int, default=2, help="runs at once on the lakehouse side")
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--labels", type=int, default=100, help="labels per annotator")
    parser.add_argument("--skip-backfill", action="store_true", help="only the annotation load")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"machine": team_backfill.machine()}
    failed = False
    with tempfile.TemporaryDirectory(prefix="prefpipe-bench-team-") as tmp:
        if not args.skip_backfill:
            try:  # a failed run raises: no time is reported for it
                backfill = team_backfill.run(args.batches, args.pairs, args.concurrent, Path(tmp) / "backfill")
            except PrefpipeError as exc:
                print(f"backfill FAILED: {exc}", file=sys.stderr, flush=True)
                failed = True
            else:
                figures["backfill"] = backfill
                print(team_backfill.report(backfill), end="\n\n", flush=True)
        loads = [load_summary(r) for r in annotation_loads(args.annotators, args.labels, Path(tmp) / "load", figures["machine"])]
    figures["annotation_load"] = loads
    print(f"annotation load: {args.annotators} annotators x {args.labels} labels each, closed loop (no think time)")
    print(load_report(loads))
    print(f"machine: {json.dumps(figures['machine'])}", flush=True)
    failed |= any(load["problems"] for load in loads)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    return 1 if failed else 0
