"""`python -m prefpipe.bench pipeline --pairs 100000,1000000`: the whole pipeline on one big batch,
beside the machine's floor, in the same run.

For each size it writes a seeded synthetic batch (two responses of about --words words a prompt, an
imported verdict with a confidence a pair, --labels-per-pair people's labels from --annotators
annotators on --human-share of the pairs), runs `prefpipe run --batch bench` in a fresh data folder and
Dagster home (a process of its own, as a user runs it), and reports its wall time and peak RSS, for the
whole run and for each step (the step's time from Dagster's event log; its peak from the run process's
RSS sampled every 20 ms while the step ran). The floor is DuckDB alone, in a process of its own, reading
the same three JSONL files into tables and writing the Parquet export (prompt, chosen, rejected): what
no pipeline over these files can beat. With two sizes or more it prints each step's time ratio between
the smallest and largest, beside the size ratio: linear growth shows as equal ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from prefpipe.bench import synthetic
from prefpipe.bench.team_backfill import GUIDELINES, BenchError, machine

BIN = Path(sys.executable).parent
SEED = 20261201
BATCH = "bench"
TARGET_WALL_S, TARGET_RSS_GB, TARGET_FLOOR_RATIO = 120.0, 3.0, 15.0

FLOOR_SQL = """
SET preserve_insertion_order = true;
CREATE TABLE prompts AS SELECT * FROM read_json('{dir}/prompts.jsonl', format = 'newline_delimited');
CREATE TABLE ai_labels AS SELECT * FROM read_json('{dir}/ai_labels.jsonl', format = 'newline_delimited');
CREATE TABLE annotations AS SELECT * FROM read_json('{dir}/annotations.jsonl', format = 'newline_delimited');
COPY (SELECT p.id || ':0' AS pair_id, p.prompt,
             CASE WHEN a.verdict LIKE 'B%' THEN p.responses[2].text ELSE p.responses[1].text END AS chosen,
             CASE WHEN a.verdict LIKE 'B%' THEN p.responses[1].text ELSE p.responses[2].text END AS rejected
      FROM prompts p JOIN ai_labels a ON a.pair_id = p.id || ':0') TO '{out}' (FORMAT parquet);
"""
"""The floor: the batch's three files read into DuckDB tables, and the trainer's export written."""


class RssSampler(threading.Thread):
    """(time, RSS bytes) of a process and its children every `every_s`, from /proc."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.samples = pid, every_s, []
        self._done = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.is_set():
            total = 0
            for pid in [self.pid, *_children(self.pid)]:
                try:
                    with open(f"/proc/{pid}/statm", "rb") as f:
                        total += int(f.read().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    pass
            self.samples.append((time.time(), total))
            self._done.wait(self.every_s)

    def stop(self) -> list[tuple[float, int]]:
        self._done.set()
        self.join()
        return self.samples


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def timed_process(args: list[str], *, env: dict[str, str], cwd: Path, log: Path, fails: bool = False) -> dict[str, Any]:
    """Run a process to its end: wall seconds, peak RSS (the kernel's maxrss of it and its waited-for
    children) and the RSS samples; BenchError with its log's tail when it fails (or, with `fails`,
    when it does not)."""
    with log.open("wb") as out:
        start = time.time()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = RssSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        samples = sampler.stop()
    if (proc.returncode != 0) != fails:
        raise BenchError(f"{' '.join(args[:4])} exited {proc.returncode}; its log ends:\n{log.read_text(errors='replace')[-3000:]}")
    sampled = max((rss for _, rss in samples), default=0)
    return {"wall_s": wall, "peak_rss_bytes": max(usage.ru_maxrss * 1024, sampled), "samples": samples, "start": start}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFPIPE_", "DAGSTER_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1", **extra)
    return env


def floor(batch: Path, folder: Path) -> dict[str, Any]:
    sql = FLOOR_SQL.format(dir=str(batch).replace("'", "''"), out=str(folder / "floor.parquet").replace("'", "''"))
    code = f"import duckdb; con = duckdb.connect({str(folder / 'floor.duckdb')!r}); con.execute({sql!r}); con.close()"
    done = timed_process([sys.executable, "-c", code], env=clean_env(), cwd=folder, log=folder / "floor.log")
    done.pop("samples")
    return done


def step_times(home: Path) -> dict[str, tuple[float, float]]:
    """step key -> (start, end) epoch seconds of the one run in this Dagster home."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        if len(runs) != 1:
            raise BenchError(f"expected one run in {home}, found {len(runs)}")
        if runs[0].status != dg.DagsterRunStatus.SUCCESS:
            raise BenchError(f"the run ended {runs[0].status.value}")
        spans: dict[str, list[float]] = {}
        for record in instance.all_logs(runs[0].run_id):
            event = record.dagster_event
            if event is None or not record.step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                spans.setdefault(record.step_key, [record.timestamp, record.timestamp])[0] = record.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                spans.setdefault(record.step_key, [record.timestamp, record.timestamp])[1] = record.timestamp
    return {k: (a, b) for k, (a, b) in spans.items()}


def row_counts(data: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM "{t}" WHERE batch_id = ?', [BATCH]).fetchone()[0]
                for t in sorted(tables) if not t.startswith("_")
                and "batch_id" in {c[0] for c in con.execute(f'DESCRIBE "{t}"').fetchall()}}


def final_labels(data: Path):
    """The batch's final labels in the form the 20K reference records them."""
    import duckdb

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("""SELECT pair_id, label, round(confidence, 6) AS confidence, n_labels, method, source, guideline_version
                              FROM final_labels WHERE batch_id = ? ORDER BY pair_id""", [BATCH]).df()


def measure(shape: synthetic.BatchShape, folder: Path, seed: int) -> dict[str, Any]:
    data, home = folder / "data", folder / "dagster_home"
    shutil.copytree(GUIDELINES, data / "guidelines")
    batch = data / "batches" / BATCH
    began = time.time()
    synthetic.write_batch(batch, BATCH, shape, seed)
    written = time.time() - began
    size = sum(p.stat().st_size for p in batch.glob("*.jsonl"))
    print(f"  {shape.pairs:,} pairs: batch written in {written:.1f} s ({size / 2**20:,.0f} MiB of JSONL); measuring the floor ...", flush=True)
    base = floor(batch, folder)
    print(f"  floor {base['wall_s']:.1f} s, {base['peak_rss_bytes'] / 2**30:.2f} GB; running the pipeline ...", flush=True)
    home.mkdir()
    env = clean_env(PREFPIPE_DATA_DIR=str(data), DAGSTER_HOME=str(home))
    run = timed_process([str(BIN / "prefpipe"), "run", "--batch", BATCH], env=env, cwd=folder, log=folder / "run.log")
    steps = {}
    for key, (a, b) in sorted(step_times(home).items(), key=lambda kv: kv[1][0]):
        rss = [r for t, r in run["samples"] if a <= t <= b]
        steps[key] = {"wall_s": b - a, "peak_rss_bytes": max(rss, default=0)}
    return {"pairs": shape.pairs, "input_mib": size / 2**20, "wall_s": run["wall_s"], "peak_rss_bytes": run["peak_rss_bytes"],
            "floor": base, "floor_ratio": run["wall_s"] / base["wall_s"], "steps": steps, "rows": row_counts(data)}


FAULTS = {
    "malformed field": (b'{"id": 17, "prompt": 42}', "line {line}", "field 'prompt'"),
    "invalid UTF-8": (b'{"id": "x", "prompt": "caf\xe9"}', "line {line}", "not valid UTF-8"),
    "BOM mid-file": (b'\xef\xbb\xbf{"id": "y", "prompt": "q"}', "line {line}", "byte order mark"),
}
"""A bad line written over line N of prompts.jsonl: the words the failure must print."""


def _replace_line(source: Path, target: Path, line: int, new: bytes) -> None:
    """`source` copied to `target` with line `line` (1-based) replaced, in blocks (no whole-file read)."""
    with source.open("rb") as src, target.open("wb") as out:
        for number, raw in enumerate(src, start=1):
            out.write(new + (b"\r\n" if raw.endswith(b"\r\n") else b"\n") if number == line else raw)


def bad_input(folder: Path, line: int) -> list[dict[str, Any]]:
    """Rerun the batch with each FAULTS line at `line` of its prompts.jsonl: the run must fail naming
    the file, the line and the field or fault, and leave every table's rows as they were."""
    data, home = folder / "data", folder / "dagster_home"
    prompts = data / "batches" / BATCH / "prompts.jsonl"
    before = row_counts(data)
    kept = prompts.with_name("prompts.jsonl.good")
    prompts.rename(kept)
    out = []
    try:
        for name, (new, where, what) in FAULTS.items():
            _replace_line(kept, prompts, line, new)
            env = clean_env(PREFPIPE_DATA_DIR=str(data), DAGSTER_HOME=str(home))
            log = folder / f"bad-{name.replace(' ', '-')}.log"
            run = timed_process([str(BIN / "prefpipe"), "run", "--batch", BATCH], env=env, cwd=folder, log=log, fails=True)
            text = log.read_text(errors="replace")
            message = next((m for m in text.splitlines() if "prompts failed" in m), "")
            named = "prompts.jsonl" in message and where.format(line=line) in message and what in message
            same = row_counts(data) == before
            out.append({"fault": name, "line": line, "message": message.strip(), "named": named, "rows_unchanged": same,
                        "wall_s": run["wall_s"], "peak_rss_bytes": run["peak_rss_bytes"]})
            if not (named and same):
                raise BenchError(f"{name} at line {line:,}: message {message.strip()!r}, rows unchanged: {same}")
    finally:
        prompts.unlink(missing_ok=True)
        kept.rename(prompts)
    return out


def report(result: dict[str, Any]) -> str:
    gb = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
    lines = [f"machine: {result['machine']}", f"batch: {result['shape']}", ""]
    lines.append("| pairs | wall s | peak RSS GB | floor s | floor GB | wall / floor |")
    lines.append("|---:|---:|---:|---:|---:|---:|")
    for r in result["sizes"]:
        lines.append(f"| {r['pairs']:,} | {r['wall_s']:.1f} | {gb(r['peak_rss_bytes'])} | {r['floor']['wall_s']:.1f} | "
                     f"{gb(r['floor']['peak_rss_bytes'])} | {r['floor_ratio']:.1f} |")
    sizes = result["sizes"]
    small, large = sizes[0], sizes[-1]
    steps = list(large["steps"])
    head = " | ".join(f"{r['pairs']:,} s / GB" for r in sizes)
    lines += ["", f"| step | {head} |" + (f" time ratio ({large['pairs'] / small['pairs']:g}x pairs) |" if len(sizes) > 1 else ""),
              "|---|" + "---:|" * (len(sizes) + (len(sizes) > 1))]
    for s in steps:
        cells = " | ".join(f"{r['steps'][s]['wall_s']:.1f} / {gb(r['steps'][s]['peak_rss_bytes'])}" if s in r["steps"] else "-" for r in sizes)
        ratio = ""
        if len(sizes) > 1 and s in small["steps"]:
            ratio = f" {large['steps'][s]['wall_s'] / max(small['steps'][s]['wall_s'], 1e-3):.1f} |"
        lines.append(f"| {s} | {cells} |{ratio}")
    lines.append("")
    for r in sizes:
        for fault in r.get("bad_input", []):
            lines.append(f"bad input, {fault['fault']} at line {fault['line']:,}: failed in {fault['wall_s']:.1f} s, peak "
                         f"{gb(fault['peak_rss_bytes'])} GB, rows unchanged: {fault['rows_unchanged']}; said: {fault['message']}")
        if "batch_api" in r:
            b = r["batch_api"]
            lines.append(f"Batch API at {r['pairs']:,} pairs: {json.dumps({k: v for k, v in b.items() if not isinstance(v, (dict, list))})}")
    big = [r for r in sizes if r["pairs"] == 1_000_000]
    if big:
        r = big[0]
        checks = [(f"wall under {TARGET_WALL_S:g} s", r["wall_s"] < TARGET_WALL_S),
                  (f"within {TARGET_FLOOR_RATIO:g}x the floor", r["floor_ratio"] < TARGET_FLOOR_RATIO),
                  (f"peak RSS under {TARGET_RSS_GB:g} GB", r["peak_rss_bytes"] < TARGET_RSS_GB * 2**30)]
        lines += ["", "targets at 1,000,000 pairs: " + "; ".join(f"{name} {'MET' if ok else 'MISSED'}" for name, ok in checks)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="100000,1000000", help="batch sizes, comma-separated (default 100000,1000000)")
    parser.add_argument("--human-share", type=float, default=0.3, help="share of the pairs people labelled (default 0.3)")
    parser.add_argument("--labels-per-pair", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--words", type=int, default=60, help="mean words a response (default 60)")
    parser.add_argument("--near-duplicates", type=float, default=0.01, help="share of near-identical pairs (default 0.01)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--bad-input", action=argparse.BooleanOptionalAction, default=True,
                        help="after the largest size, rerun it with a bad line in prompts.jsonl (each fault in FAULTS) and check the message and the rows")
    parser.add_argument("--bad-line", type=int, help="the line the faults go on (default: 900,000, or 90%% of the pairs for smaller batches)")
    parser.add_argument("--judge", choices=["imported", "batch-api"], default="imported",
                        help="batch-api: also time preparing and ingesting the Batch API path at each size (prefpipe.bench.batch_api)")
    parser.add_argument("--workdir", type=Path, help="keep the batches, data folders and logs here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = sorted(int(x.replace("_", "")) for x in args.pairs.split(","))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="prefpipe-bench-pipeline-")).resolve()
    shape = dict(human_share=args.human_share, words=args.words, annotators=args.annotators,
                 labels_per_pair=args.labels_per_pair, near_duplicates=args.near_duplicates)
    load_before = os.getloadavg()
    try:
        results = []
        for n in sizes:
            folder = workdir / f"pairs-{n}"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            print(f"measuring {n:,} pairs in {folder}", flush=True)
            r = measure(synthetic.BatchShape(n, **shape), folder, args.seed)
            r["floor"].pop("start", None)
            if args.bad_input and n == sizes[-1]:
                line = args.bad_line or min(900_000, int(n * 0.9))
                print(f"  bad input at line {line:,} of prompts.jsonl ...", flush=True)
                r["bad_input"] = bad_input(folder, line)
            if args.judge == "batch-api":
                from prefpipe.bench import batch_api

                print("  the Batch API path: preparing and ingesting ...", flush=True)
                r["batch_api"] = batch_api.measure(n, folder / "batch-api")
            results.append(r)
            print(f"  pipeline {r['wall_s']:.1f} s, {r['peak_rss_bytes'] / 2**30:.2f} GB", flush=True)
            if args.workdir is None:
                shutil.rmtree(folder, ignore_errors=True)
        result = {"machine": {**machine(), "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}, "shape": shape, "seed": args.seed, "sizes": [{k: v for k, v in r.items() if k != "start"} for r in results]}
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0
