"""`python -m prefpipe.bench batch-api --pairs 100000`: the judge through the OpenAI Batch API at
scale, against the scripted server's Batch API.

A seeded synthetic batch of N pairs (the pipeline benchmark's shape, without the imported verdicts,
so the judge is asked) is made into response_pairs by the real assets (not timed), then the
`ai_labels` asset runs with `batch_api: true` through Dagster, twice, each run a process of its
own timed as a user's would be (wall, peak RSS):
1. prepare: the run that finds no answer, writes the 2N requests into input files within the API's
   limits, uploads them and creates the batches;
2. ingest: after the server has answered every batch (not timed), the run that streams the output
   files into the cache and writes the labels and the judge_calls ledger.
Both runs are the product's own code path (`dg.materialize` of ai_labels, response_pairs read from
the warehouse). The server runs in its own process and is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prefpipe.bench import synthetic
from prefpipe.bench.team_backfill import GUIDELINES, BenchError, machine

BATCH, SEED = "bench", 20261201  # the pipeline benchmark's (it imports this module, so not imported from it)

TARGET_WALL_S, TARGET_RSS_GB = 120.0, 3.0
SHAPE = dict(human_share=0.3, words=60, annotators=200, near_duplicates=0.01)


def _server(log: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "prefpipe.testing.scripted_server", "--batch-polls", "0"],
                            stdout=subprocess.PIPE, stderr=log.open("wb"), text=True, env=clean_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise BenchError(f"the scripted server did not start: {line!r}")
    return proc, line.split()[1]


def _get(url: str, path: str, timeout: float = 3600) -> dict[str, Any]:
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + path, timeout=timeout) as response:
        return json.loads(response.read())


def _complete_all(url: str, jobs: list[str]) -> float:
    """Poll every job until the server has answered it (the server answers on the poll); seconds taken."""
    began = time.time()
    for job in jobs:
        while _get(url, f"/v1/batches/{job}")["status"] not in ("completed", "expired", "failed", "cancelled"):
            time.sleep(0.2)
    return time.time() - began


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFPIPE_", "DAGSTER_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _phase(folder: Path, url: str, name: str) -> dict[str, Any]:
    """One Dagster run of ai_labels (batch_api) in a process of its own: wall seconds and peak RSS
    (the kernel's maxrss of the process, as the pipeline benchmark reads it)."""
    args = [sys.executable, "-m", "prefpipe.bench.batch_api", "--run-asset", str(folder), "--url", url]
    with (folder / f"{name}.log").open("wb") as log:
        start = time.time()
        proc = subprocess.Popen(args, env=clean_env(PREFPIPE_DATA_DIR=str(folder / "data")), cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise BenchError(f"the {name} run failed; its log ends:\n{(folder / f'{name}.log').read_text(errors='replace')[-3000:]}")
    return {"wall_s": time.time() - start, "peak_rss_bytes": usage.ru_maxrss * 1024}


def run_asset(folder: Path, url: str, selection: list[str]) -> None:
    """Materialize `selection` for the bench batch (an ephemeral instance; the warehouse lasts)."""
    import dagster as dg

    from prefpipe.definitions import build_definitions
    from prefpipe.defs.resources import LLMResource

    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batches", [BATCH])
    llm = LLMResource(base_url=url, api_key="EMPTY", cache_path=str(folder / "llm_cache.sqlite3"))
    config = {"ops": {"ai_labels": {"config": {"batch_api": True}}}} if "ai_labels" in selection else {}
    result = dg.materialize(defs.assets, selection=selection, partition_key=BATCH, instance=instance, raise_on_error=False,
                            resources={**defs.resources, "llm": llm}, run_config=config)
    if not result.success:
        from prefpipe.cli.pipeline import step_failures

        raise SystemExit(f"run failed: {step_failures(result)}")


def _cache_figures(folder: Path) -> dict[str, Any]:
    with sqlite3.connect(folder / "llm_cache.sqlite3") as con:
        jobs = con.execute("SELECT job_id, n_requests, status FROM batch_jobs ORDER BY submitted_at").fetchall()
        answers = con.execute("SELECT count(*) FROM answers").fetchone()[0]
    return {"jobs": [j for j, _, s in jobs if s not in ("completed", "expired", "failed", "cancelled")], "files": len(jobs),
            "requests": sum(n for _, n, _ in jobs), "answers": answers}


def _table_rows(folder: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(folder / "data" / "warehouse.duckdb"), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t} WHERE batch_id = ?", [BATCH]).fetchone()[0] for t in ("ai_labels", "judge_calls")}


def measure(pairs: int, workdir: Path) -> dict[str, Any]:
    """Prepare+submit and ingest of `pairs` pairs (2 x pairs requests): JSON-ready figures."""
    folder = Path(workdir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    shutil.copytree(GUIDELINES, data / "guidelines", dirs_exist_ok=True)
    synthetic.write_batch(data / "batches" / BATCH, BATCH, synthetic.BatchShape(pairs, **SHAPE), seed=SEED)  # type: ignore[arg-type]
    (data / "batches" / BATCH / "ai_labels.jsonl").unlink()  # no imported verdicts: the judge is asked
    server, url = _server(folder / "server.log")
    try:
        began = time.time()
        env = clean_env(PREFPIPE_DATA_DIR=str(data))
        subprocess.run([sys.executable, "-m", "prefpipe.bench.batch_api", "--run-asset", str(folder), "--url", url, "--setup"],
                       env=env, cwd=folder, check=True, stdout=(folder / "setup.log").open("wb"), stderr=subprocess.STDOUT)
        setup_s = time.time() - began
        print(f"  {pairs:,} pairs: response_pairs made in {setup_s:.0f} s; preparing ...", flush=True)
        prepare = _phase(folder, url, "prepare")
        submitted = _cache_figures(folder)
        uploaded = _get(url, "/_stats")["counts"].get("upload_bytes", 0)
        print(f"  prepared in {prepare['wall_s']:.1f} s, {prepare['peak_rss_bytes'] / 2**30:.2f} GB: {submitted['files']} files; "
              "the server answers them ...", flush=True)
        answering_s = _complete_all(url, submitted["jobs"])
        ingest = _phase(folder, url, "ingest")
        after = _cache_figures(folder)
        rows = _table_rows(folder)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "pairs": pairs, "prepare_wall_s": prepare["wall_s"], "prepare_peak_rss_bytes": prepare["peak_rss_bytes"],
        "ingest_wall_s": ingest["wall_s"], "ingest_peak_rss_bytes": ingest["peak_rss_bytes"],
        "files": submitted["files"], "requests": submitted["requests"], "bytes_uploaded": uploaded, "answers_ingested": after["answers"],
        "labels": rows["ai_labels"], "judge_calls": rows["judge_calls"], "setup_s": setup_s, "server_answering_s": answering_s,
        "still_open_jobs": len(after["jobs"]),
    }


def report(results: list[dict[str, Any]]) -> str:
    gb = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
    lines = [f"machine: {machine()}", "", "| pairs | requests | files | MB uploaded | prepare s | prepare GB | ingest s | ingest GB | answers | labels |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['pairs']:,} | {r['requests']:,} | {r['files']} | {r['bytes_uploaded'] / 1e6:,.0f} | {r['prepare_wall_s']:.1f} | "
                     f"{gb(r['prepare_peak_rss_bytes'])} | {r['ingest_wall_s']:.1f} | {gb(r['ingest_peak_rss_bytes'])} | {r['answers_ingested']:,} | {r['labels']:,} |")
    return "\n".join(lines)


def _one(pairs: int, folder: Path, keep: bool) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    print(f"measuring {pairs:,} pairs in {folder}", flush=True)
    try:
        return measure(pairs, folder)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench batch-api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="100000", help="batch sizes, comma-separated (default 100000)")
    parser.add_argument("--workdir", type=Path, help="keep the data, cache and logs here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--run-asset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_asset:
        run_asset(args.run_asset, args.url, ["prompts", "response_pairs", "generation_calls"] if args.setup else ["ai_labels", "judge_calls"])
        return 0
    sizes = sorted(int(x.replace("_", "")) for x in args.pairs.split(","))
    with tempfile.TemporaryDirectory(prefix="prefpipe-bench-batch-api-") as scratch:
        workdir = Path(args.workdir or scratch).resolve()
        try:
            results = [_one(n, workdir / f"pairs-{n}", keep=args.workdir is not None) for n in sizes]
        except (BenchError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print("\n" + report(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "shape": SHAPE, "seed": SEED, "sizes": results}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
