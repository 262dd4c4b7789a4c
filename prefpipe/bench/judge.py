"""`python -m prefpipe.bench judge --pairs 4000`: judge throughput against the loopback server.

The scripted OpenAI-compatible server runs in its own process with a fixed latency per request
(100 ms by default). With C requests in flight the best any client can do is C / latency requests
per second: that bound, and the bare `openai` client driven at the same concurrency over the same
requests (the reference library, in the same run), are what prefpipe is measured against.

Rounds 1-3 are repeated (--repeat, interleaved so machine load hits both alike) and the best
round counts, as timeit does on a noisy machine. Each run starts on a fresh cache:
1. reference: the bare openai client, same bodies, no cache, no parsing;
2. clean: `judge_pairs` (both orders), no faults. Target: >= 80% of the bound;
3. faults: 5% of first attempts answered 429 (Retry-After 0.2 s) and 2% answered 500.
   Target: answered requests per second >= 70% of the bound, and no row failed;
4. cached: `prefpipe judge` as a fresh process on the cache of run 3, three times. Target: median
   under 5 s wall time including interpreter start-up, and zero requests counted by the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any


def _server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefpipe.testing.scripted_server", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("LISTENING "):
            return proc, line.split()[1]
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("the scripted server did not start")


def _call(url: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    root = url.rsplit("/v1", 1)[0]
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(root + path, data=data, method="POST" if data is not None else "GET", headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def synthetic_pairs(n: int) -> Any:
    import pandas as pd

    topics = ["sorting a list", "a haiku about rain", "the capital of Peru", "unit tests", "a polite refusal", "compound interest"]
    rows = []
    for i in range(n):
        topic = topics[i % len(topics)]
        qa, qb = ((i * 37) % 100) / 100, ((i * 61 + 13) % 100) / 100
        rows.append(
            {
                "pair_id": f"bench{i}:0",
                "prompt": f"Request {i}: explain {topic} to a new colleague.",
                "response_a": f"Here is an explanation of {topic} (draft {i}). " + "It covers the basics. " * (1 + i % 4) + f"[[q={qa:.2f}]]",
                "response_b": f"A different take on {topic}, number {i}. " + "It adds an example. " * (1 + (i // 3) % 5) + f"[[q={qb:.2f}]]",
            }
        )
    return pd.DataFrame(rows)


async def _reference(url: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[float, float]:
    import openai

    from prefpipe.llm.client import LLMSettings, _http_client

    transport = _http_client(openai, LLMSettings())
    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=60, http_client=transport)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with semaphore:
            text = await client.post("/chat/completions", body=body, cast_to=str)
        json.loads(text)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(b) for b in bodies))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    return elapsed, cpu


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per request (default 0.1)")
    parser.add_argument("--rate-429", type=float, default=0.05)
    parser.add_argument("--retry-after", type=float, default=0.2)
    parser.add_argument("--rate-500", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of reference / clean / faults, interleaved; the best round counts (default 2)")
    parser.add_argument("--guidelines", help="guidelines folder (default <data dir>/guidelines)")
    parser.add_argument("--workdir", help="keep the files here instead of a temporary folder")
    args = parser.parse_args(argv)

    from prefpipe.core.guidelines import load_guidelines
    from prefpipe.judge.judge import JudgeConfig, _prepare, judge_pairs
    from prefpipe.llm.client import LLMClient
    from prefpipe.llm.jsonl import write_jsonl

    guidelines_dir = Path(args.guidelines) if args.guidelines else None
    guidelines = load_guidelines(guidelines_dir)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="prefpipe-bench-judge-"))
    work.mkdir(parents=True, exist_ok=True)
    pairs = synthetic_pairs(args.pairs)
    pairs_file = work / "pairs.jsonl"
    write_jsonl(pairs_file, pairs)
    judge = JudgeConfig(model="bench-judge")
    bound = args.concurrency / args.latency
    faults = {"rate_429": args.rate_429, "retry_after": args.retry_after, "rate_500": args.rate_500}
    proc, url = _server(args.latency)
    best: dict[str, float] = {"reference": 0.0, "clean": 0.0, "faults": 0.0}
    failed_rows = 0
    try:
        bodies = [request.body() for _, _, _, request in _prepare(pairs, guidelines, [judge]).jobs]
        n = len(bodies)
        print(f"judge benchmark: {args.pairs} pairs x 2 orders = {n} requests, concurrency {args.concurrency}, "
              f"server latency {args.latency * 1000:.0f} ms -> bound {bound:.0f} requests/s; {args.repeat} interleaved round(s)")

        def judged(cache: Path) -> tuple[float, float, Any, dict[str, Any]]:
            cache.unlink(missing_ok=True)
            _call(url, "/_reset", {})
            client = LLMClient(base_url=url, api_key="EMPTY", concurrency=args.concurrency, cache_path=str(cache))
            start, cpu = time.perf_counter(), time.process_time()
            result = judge_pairs(pairs, guidelines, [judge], client)
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            client.close()
            return took, cpu, result, _call(url, "/_stats")["counts"]

        for round_no in range(1, args.repeat + 1):
            _call(url, "/_config", {"faults": {}})
            elapsed, cpu = asyncio.run(_reference(url, bodies, args.concurrency))
            rate = n / elapsed
            best["reference"] = max(best["reference"], rate)
            print(f"[{round_no}] reference (bare openai client): {rate:6.1f} req/s = {rate / bound:5.1%} of the bound "
                  f"({elapsed:.1f} s, client CPU {cpu / n * 1000:.2f} ms/request)")

            took, cpu, result, counts = judged(work / "clean.sqlite3")
            sent = counts.get("chat", 0)
            rate = sent / took
            best["clean"] = max(best["clean"], rate)
            print(f"[{round_no}] prefpipe, no faults:            {rate:6.1f} req/s = {rate / bound:5.1%} of the bound "
                  f"({took:.1f} s, {sent} requests, client CPU {cpu / max(1, sent) * 1000:.2f} ms/request)")

            _call(url, "/_config", {"faults": faults})
            took, cpu, result, counts = judged(work / "faults.sqlite3")
            answered, sent = counts.get("status_200", 0), counts.get("chat", 0)
            rate = answered / took
            best["faults"] = max(best["faults"], rate)
            failed_rows = max(failed_rows, int((result.labels["status"] == "failed").sum()))
            print(f"[{round_no}] prefpipe, 5% 429 + 2% 500:      {rate:6.1f} answered/s = {rate / bound:5.1%} of the bound "
                  f"({took:.1f} s; {counts.get('status_429', 0)} x 429, {counts.get('status_500', 0)} x 500, {sent} requests; "
                  f"client CPU {cpu / max(1, sent) * 1000:.2f} ms/request; {failed_rows} failed rows)")
        _call(url, "/_config", {"faults": {}})

        # the cached rerun: the real command in a fresh process, on the cache of the faults run;
        # bytecode caching as on a user's machine (this sandbox sets PYTHONDONTWRITEBYTECODE)
        out = work / "labels.jsonl"
        command = [sys.executable, "-m", "prefpipe.cli", "judge", "--pairs", str(pairs_file), "--out", str(out), "--model", judge.model,
                   "--base-url", url, "--cache", str(work / "faults.sqlite3"), "--concurrency", str(args.concurrency)]
        if guidelines_dir is not None:
            command += ["--guidelines", str(guidelines_dir)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached_times, sent_total, lines, code = [], 0, 0, 0
        for _ in range(3):
            _call(url, "/_reset", {})
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env={**env, "OPENAI_API_KEY": "EMPTY"})
            cached_times.append(time.perf_counter() - start)
            sent_total += _call(url, "/_stats")["counts"].get("chat", 0)
            lines = sum(1 for _ in out.open()) if out.exists() else 0
            code = code or done.returncode
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
        median = sorted(cached_times)[1]
        print(f"cached rerun (prefpipe judge CLI, new process, 3 runs): {', '.join(f'{t:.2f}' for t in cached_times)} s wall; "
              f"{sent_total} requests sent; {lines} labels written")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    checks = [
        ("no faults", best["clean"] / bound, best["clean"] >= 0.8 * bound, ">= 80% of the bound"),
        ("5% 429 + 2% 500", best["faults"] / bound, best["faults"] >= 0.7 * bound and failed_rows == 0, ">= 70% of the bound, no failed row"),
    ]
    print(f"best rounds: reference {best['reference']:.1f} req/s ({best['reference'] / bound:.1%} of the bound); "
          f"prefpipe {best['clean']:.1f} req/s = {best['clean'] / best['reference']:.1%} of the reference")
    for name, ratio, ok, target in checks:
        print(f"  {name}: {ratio:.1%} of the bound, target {target}: {'MET' if ok else 'MISSED'}")
    cached_ok = code == 0 and median < 5 and sent_total == 0 and lines == args.pairs
    print(f"  cached rerun: median {median:.2f} s, {sent_total} requests, target < 5 s and none sent: {'MET' if cached_ok else 'MISSED'}")
    print(f"files in {work}")
    return 0 if all(ok for _, _, ok, _ in checks) and cached_ok else 1
