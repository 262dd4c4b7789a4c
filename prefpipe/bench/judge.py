"""`python -m prefpipe.bench judge --pairs 4000`: judge throughput against the loopback server.

The scripted OpenAI-compatible server runs in its own process with a fixed latency per request
(100 ms by default). With C requests in flight the best any client can do is C / latency requests
per second: that bound, and the bare `openai` client driven at the same concurrency over the same
requests (the reference library, in the same run), are what prefpipe is measured against.

Runs, each on a fresh cache unless said otherwise:
1. reference: the bare openai client, same bodies, no cache, no parsing;
2. clean: `judge_pairs` (both orders), no faults. Target: >= 80% of the bound;
3. faults: 5% of first attempts answered 429 (Retry-After 0.2 s) and 2% answered 500.
   Target: answered requests per second >= 70% of the bound, and no row failed;
4. cached: `prefpipe judge` as a fresh process on the cache of run 3. Target: under 5 s
   wall time including interpreter start-up, and zero requests counted by the server.
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
        [sys.executable, "-m", "prefpipe.llm.scripted_server", "--latency", str(latency)],
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
    parser.add_argument("--guidelines", help="guidelines folder (default <data dir>/guidelines)")
    parser.add_argument("--workdir", help="keep the files here instead of a temporary folder")
    args = parser.parse_args(argv)

    from prefpipe.guidelines import load_guidelines
    from prefpipe.judge.judge import JudgeConfig, _Judge, _requests, judge_pairs
    from prefpipe.judge.template import load_template
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
    proc, url = _server(args.latency)
    results: list[tuple[str, str, bool]] = []
    try:
        prepared = _Judge(judge, load_template(judge.template), judge.judge_name())
        bodies = [_requests(prepared, guidelines, p, order).body() for p in pairs.to_dict("records") for order in ("ab", "ba")]
        n = len(bodies)
        print(f"judge benchmark: {args.pairs} pairs x 2 orders = {n} requests, concurrency {args.concurrency}, "
              f"server latency {args.latency * 1000:.0f} ms -> bound {bound:.0f} requests/s")

        elapsed, cpu = asyncio.run(_reference(url, bodies, args.concurrency))
        ref_rate = n / elapsed
        print(f"reference (bare openai client): {ref_rate:7.1f} req/s  = {ref_rate / bound:5.1%} of the bound  ({elapsed:.1f} s, "
              f"client CPU {cpu / n * 1000:.2f} ms/request)")

        def judged(cache: Path) -> tuple[float, Any, dict[str, Any]]:
            _call(url, "/_reset", {})
            client = LLMClient(base_url=url, api_key="EMPTY", concurrency=args.concurrency, cache_path=str(cache))
            start, cpu = time.perf_counter(), time.process_time()
            result = judge_pairs(pairs, guidelines, [judge], client)
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            client.close()
            counts = _call(url, "/_stats")["counts"]
            print(f"    (client CPU {cpu / max(1, counts.get('chat', 0)) * 1000:.2f} ms/request)")
            return took, result, counts

        took, result, counts = judged(work / "clean.sqlite3")
        rate = counts.get("chat", 0) / took
        ok = rate >= 0.8 * bound
        print(f"prefpipe clean:                 {rate:7.1f} req/s  = {rate / bound:5.1%} of the bound, {rate / ref_rate:5.1%} of the reference  "
              f"({took:.1f} s, {counts.get('chat', 0)} requests)  target >= 80%: {'MET' if ok else 'MISSED'}")
        results.append(("clean", f"{rate / bound:.1%}", ok))

        _call(url, "/_config", {"faults": {"rate_429": args.rate_429, "retry_after": args.retry_after, "rate_500": args.rate_500}})
        took, result, counts = judged(work / "faults.sqlite3")
        answered = counts.get("status_200", 0)
        rate = answered / took
        failed = int((result.labels["status"] == "failed").sum())
        ok = rate >= 0.7 * bound and failed == 0
        print(f"prefpipe with faults:           {rate:7.1f} answered/s = {rate / bound:5.1%} of the bound  ({took:.1f} s; "
              f"{counts.get('status_429', 0)} x 429, {counts.get('status_500', 0)} x 500, {counts.get('chat', 0)} requests in all; "
              f"{failed} failed rows)  target >= 70%: {'MET' if ok else 'MISSED'}")
        results.append(("faults", f"{rate / bound:.1%}", ok))
        _call(url, "/_config", {"faults": {}})

        _call(url, "/_reset", {})
        out = work / "labels.jsonl"
        command = [sys.executable, "-m", "prefpipe.cli", "judge", "--pairs", str(pairs_file), "--out", str(out), "--model", judge.model,
                   "--base-url", url, "--cache", str(work / "faults.sqlite3"), "--concurrency", str(args.concurrency)]
        if guidelines_dir is not None:
            command += ["--guidelines", str(guidelines_dir)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "EMPTY"})
        took = time.perf_counter() - start
        sent = _call(url, "/_stats")["counts"].get("chat", 0)
        lines = sum(1 for _ in out.open()) if out.exists() else 0
        ok = done.returncode == 0 and took < 5 and sent == 0 and lines == args.pairs
        print(f"cached rerun (prefpipe judge CLI, new process): {took:.2f} s wall, {sent} requests sent, {lines} labels written  "
              f"target < 5 s and 0 requests: {'MET' if ok else 'MISSED'}")
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
        results.append(("cached", f"{took:.2f} s", ok))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print("summary: " + ", ".join(f"{name} {value} {'MET' if ok else 'MISSED'}" for name, value, ok in results))
    print(f"files in {work}")
    return 0 if all(ok for _, _, ok in results) else 1
