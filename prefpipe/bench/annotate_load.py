"""`python -m prefpipe.bench annotate-load`: many annotators labelling at once against a live server.

Starts `prefpipe annotate` in its own process on 127.0.0.1 (ephemeral port) over a fresh store
(or several such processes, replicas over one store: a SQLite file, or PostgreSQL with `--store`),
then runs N concurrent simulated annotators, each fetching and answering M tasks as fast as the
server allows (a closed loop: the hardest case; real people think for seconds between labels).
With replicas every request goes to a replica drawn at random, as behind a load balancer, so a
task served by one is answered through another. A 503 (the store unavailable, e.g. PostgreSQL
restarting) is retried after a pause, as the page does; nothing was stored by the refused call.
The simulated annotators are honest: every response carries a visible quality score, and each
annotator answers for the better one in the order it was shown, so the check can prove that every
label was stored exactly once, none lost, and mapped back to the pair's own order correctly.

Reference in the same run: the same clients hitting /api/health (no token, no database) in the
same closed loop give the floor of this stack (uvicorn + FastAPI + the HTTP client) on this
machine; the report prints the annotation calls' p50/p95 beside it and their ratio. A second,
paced run (think time before and after each answer: still ~10x faster than real annotators)
shows the latency an annotator would feel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_RUBRIC = [{"name": "helpfulness", "weight": 1.0, "description": "Does what the prompt asks."}]
FILLER = "The answer explains its reasoning step by step and keeps to the point of the question. " * 6
SCORE = re.compile(r"Quality score: (\d+)")


@dataclass
class LoadResult:
    annotators: int
    labels_each: int
    wall_s: float
    latencies_ms: dict[str, list[float]]
    floor_ms: list[float]
    problems: list[str] = field(default_factory=list)
    think_s: float = 0.0
    server_cpu_ms_per_call: float = float("nan")
    floor_cpu_ms_per_call: float = float("nan")
    store: str = "sqlite"
    replicas: int = 1
    retried: int = 0
    """Calls refused with 503 (store unavailable) and sent again."""

    def stats(self, values: list[float]) -> dict[str, float]:
        import numpy as np

        arr = np.asarray(values, dtype=float)
        return {
            "n": float(arr.size),
            "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)),
            "max": float(arr.max()),
        }

    def report(self) -> str:
        every = [v for values in self.latencies_ms.values() for v in values]
        floor = self.stats(self.floor_ms or [float("nan")])
        total = self.stats(every)
        pacing = (f"think time ~{self.think_s * 1000:.0f} ms before and after each answer" if self.think_s
                  else "closed loop, no think time")
        lines = [
            f"annotate-load ({self.store}, {self.replicas} app replica{'s' if self.replicas > 1 else ''}): "
            f"{self.annotators} concurrent annotators x {self.labels_each} labels "
            f"= {self.annotators * self.labels_each} labels ({pacing}), {len(every)} API calls in {self.wall_s:.1f} s "
            f"({len(every) / self.wall_s:.0f} calls/s)",
            f"{'call':<26} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        ]
        rows = [*self.latencies_ms.items(), ("all annotation calls", every)]
        rows += [("floor: GET /api/health", self.floor_ms)] if self.floor_ms else []
        for name, values in rows:
            s = self.stats(values)
            lines.append(f"{name:<26} {int(s['n']):>6} {s['p50']:>8.1f} {s['p95']:>8.1f} {s['p99']:>8.1f} {s['max']:>8.1f}")
        target = f"p95 {total['p95']:.1f} ms (target < 50 ms)"
        if self.floor_ms:
            target += (f"; vs the stack's floor: p50 x{total['p50'] / floor['p50']:.1f}, "
                       f"p95 x{total['p95'] / floor['p95']:.1f}; server CPU per call "
                       f"{self.server_cpu_ms_per_call:.2f} ms vs {self.floor_cpu_ms_per_call:.2f} ms")
        else:
            target += f"; server CPU per call {self.server_cpu_ms_per_call:.2f} ms"
        lines.append(target)
        lines.append(f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if self.retried:
            lines.append(f"{self.retried} calls refused with 503 (store unavailable) and sent again")
        lines.append("integrity: " + ("every label stored exactly once, none lost, all mapped back correctly"
                                       if not self.problems else "; ".join(self.problems[:10])))
        return "\n".join(lines)


def _truth(score_a: int, score_b: int) -> str:
    return "A>B" if score_a > score_b else ("B>A" if score_b > score_a else "A=B")


def _pairs(n: int, prefix: str, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    qa, qb = rng.integers(1, 10, n), rng.integers(1, 10, n)
    return pd.DataFrame(
        {
            "pair_id": [f"{prefix}{i}" for i in range(n)],
            "prompt": [f"Question {prefix}{i}: how do I sort a list in Python?" for i in range(n)],
            "response_a": [f"Response {prefix}{i}-a. Quality score: {a}\n\n{FILLER}\n```python\nsorted(xs)\n```" for i, a in enumerate(qa)],
            "response_b": [f"Response {prefix}{i}-b. Quality score: {b}\n\n{FILLER}\n```python\nxs.sort()\n```" for i, b in enumerate(qb)],
            "truth": [_truth(int(a), int(b)) for a, b in zip(qa, qb)],
        }
    )


def prepare(store_location: str, annotators: int, labels_each: int, per_item: int) -> tuple[list[str], dict[str, str]]:
    """A fresh store with annotators, enough tasks for everyone, and a gold pool; returns tokens and truths."""
    from prefpipe.annotate.store import AnnotationStore

    real = max(math.ceil(annotators * labels_each / per_item) + annotators, labels_each)  # nobody runs dry
    tasks = _pairs(real, "p", seed=1)
    gold = _pairs(max(20, labels_each // 5), "g", seed=2)
    with AnnotationStore(store_location) as store:
        tokens = [store.add_annotator(f"load{i:03d}") for i in range(annotators)]
        store.enqueue(
            "load",
            tasks.assign(route="human", priority=0.0),
            per_item=per_item,
            guideline_version="bench",
            rubric=BENCH_RUBRIC,
            gold=gold.rename(columns={"truth": "label"}),
        )
    truths = dict(zip(tasks["pair_id"], tasks["truth"])) | dict(zip(gold["pair_id"], gold["truth"]))
    return tokens, truths


class ServerProcess:
    """`prefpipe annotate --port 0` in a child process; the URL is read from its first line."""

    def __init__(self, data_dir: Path, store_location: str, start_timeout_s: float = 60.0) -> None:
        env = dict(os.environ, PREFPIPE_DATA_DIR=str(data_dir), PREFPIPE_ANNOTATION_STORE=store_location, PYTHONUNBUFFERED="1")
        self.log = data_dir / f"app-{len(list(data_dir.glob('app-*.log')))}.log"
        with self.log.open("w") as log:  # what the server says on stderr, for the reader of a failure
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefpipe.cli", "annotate", "--host", "127.0.0.1", "--port", "0"],
                stdout=subprocess.PIPE, stderr=log, env=env, text=True,
            )
        self.url = self._read_url(start_timeout_s)

    def _read_url(self, timeout_s: float) -> str:
        import httpx

        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the annotation server did not start (said {line!r})")
        url = match.group(1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/api/health", timeout=2.0).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the annotation server at {url} did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation only.

    httpx costs several times more CPU per call; on a shared 2-core machine the load generator
    would steal the server's CPU and the figures would measure the client. This client does only
    what the load needs: one connection, JSON bodies, Content-Length framing.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}Content-Length: {len(data)}\r\n"
                + ("Content-Type: application/json\r\n" if data else "") + "\r\n")
        self.writer.write(head.encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next((int(x.split(b":", 1)[1]) for x in lines[1:] if x.lower().startswith(b"content-length:")), 0)
        payload = await self.reader.readexactly(length) if length else b""
        return status, (json.loads(payload) if payload else None)


class Replicas:
    """One keep-alive connection per replica for one annotator; each call goes to a random one.
    A 503 or a dropped connection (the store or a replica restarting) is sent again after a pause,
    up to `patience_s`; `retried` counts them."""

    def __init__(self, urls: list[str], token: str, rng: random.Random, patience_s: float = 60.0) -> None:
        self.clients = [RawClient(url, token) for url in urls]
        self.rng, self.patience_s, self.retried, self.last_retried = rng, patience_s, 0, False

    async def __aenter__(self) -> Replicas:
        for client in self.clients:
            await client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients:
            await client.__aexit__()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        deadline = time.monotonic() + self.patience_s
        self.last_retried = False
        while True:
            client = self.rng.choice(self.clients)
            try:
                status, payload = await client.request(method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await client.__aexit__()
                try:
                    await client.__aenter__()
                except OSError:  # the replica itself is down: the next try connects again
                    pass
                status, payload = 503, None
            if status != 503 or time.monotonic() > deadline:
                return status, payload
            self.retried += 1
            self.last_retried = True
            await asyncio.sleep(0.2)


async def _annotator(urls: list[str], token: str, labels_each: int, think_s: float, rng: random.Random,
                     lat: dict[str, list[float]], sent: list[tuple[str, str, str]], problems: list[str],
                     retries: list[int]) -> None:
    async with Replicas(urls, token, rng) as client:
        try:
            await _label(client, token, labels_each, think_s, rng, lat, sent, problems)
        finally:
            retries.append(client.retried)


async def _label(client: Replicas, token: str, labels_each: int, think_s: float, rng: random.Random,
                 lat: dict[str, list[float]], sent: list[tuple[str, str, str]], problems: list[str]) -> None:
    for _ in range(labels_each):
        t0 = time.perf_counter()
        status, task = await client.request("GET", "/api/tasks/next")
        lat["GET /api/tasks/next"].append((time.perf_counter() - t0) * 1000)
        if status != 200:
            problems.append(f"{token[:8]}: GET next answered {status}")
            return
        a, b = (int(SCORE.search(task[k]).group(1)) for k in ("response_a", "response_b"))
        label = _truth(a, b)
        if think_s:
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
        body = {"label": label, "dimensions": {"helpfulness": {"A": min(5, max(1, a // 2)), "B": min(5, max(1, b // 2))}}}
        t0 = time.perf_counter()
        status, answer = await client.request("POST", f"/api/tasks/{task['task_id']}/annotations", body)
        lat["POST /api/tasks/{id}/annotations"].append((time.perf_counter() - t0) * 1000)
        if status == 409 and client.last_retried:  # stored by a try whose reply was lost (a dropped connection)
            status = 201
        if status != 201:
            problems.append(f"{token[:8]}: POST answered {status}: {answer}")
            return
        sent.append((token, task["task_id"], label))
        if think_s:
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))


async def _floor(url: str, clients: int, calls_each: int) -> list[float]:
    out: list[float] = []

    async def one() -> None:
        async with RawClient(url) as client:
            for _ in range(calls_each):
                t0 = time.perf_counter()
                status, _ = await client.request("GET", "/api/health")
                if status != 200:
                    raise RuntimeError(f"/api/health answered {status}")
                out.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(one() for _ in range(clients)))
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to report server CPU per call."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verify(store_location: str, sent: list[tuple[str, str, str]], truths: dict[str, str], expected: int) -> list[str]:
    """Every label the clients got a 201 for is stored once, with the label shown, mapped back right."""
    import sqlalchemy as sa

    from prefpipe.annotate.store import AnnotationStore

    problems = []
    with AnnotationStore(store_location) as store, store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(
            """SELECT a.task_id, a.label_shown, a.label, i.pair_id, i.queue, a.annotator_id
               FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.status = 'answered'"""))]
        over = conn.execute(sa.text(
            """SELECT count(*) FROM items i WHERE queue != 'gold' AND
               (SELECT count(*) FROM assignments a WHERE a.item_id = i.id AND a.status = 'answered') > i.labels_wanted"""
        )).scalar_one()
        flagged = conn.execute(sa.text("SELECT count(*) FROM annotators WHERE flagged = 1")).scalar_one()
    stored = {task_id: (shown, label, pair_id) for task_id, shown, label, pair_id, _q, _a in rows}
    if len(sent) != expected:
        problems.append(f"{len(sent)} labels acknowledged, {expected} expected")
    if len(rows) != len(sent):
        problems.append(f"{len(rows)} answers stored for {len(sent)} acknowledged")
    if len(stored) != len(rows):
        problems.append("a task id is stored twice")
    wrong = 0
    for _token, task_id, label_shown in sent:
        got = stored.get(task_id)
        if got is None:
            problems.append(f"task {task_id} acknowledged but not stored")
        elif got[0] != label_shown or got[1] != truths[got[2]]:
            wrong += 1
    if wrong:
        problems.append(f"{wrong} labels stored differently from what was sent / mapped back wrongly")
    if over:
        problems.append(f"{over} items got more answers than wanted")
    if flagged:
        problems.append(f"{flagged} honest annotators were flagged")
    return problems


def run_load(data_dir: Path, annotators: int = 50, labels_each: int = 100, per_item: int = 3,
             think_s: float = 0.0, seed: int = 0, measure_floor: bool = True, store: str | None = None,
             replicas: int = 1, during: Any = None) -> LoadResult:
    """Fresh store (`store`: an empty PostgreSQL database's URL; default a SQLite file in
    `data_dir`), `replicas` live servers in child processes, the floor run, then the load.
    `during(sent)`, if given, runs in a thread while the annotators label (a fault to inject); `sent`
    is the growing list of acknowledged labels, so it can wait for the load to be under way."""
    import threading

    data_dir.mkdir(parents=True, exist_ok=True)
    location = store or str(data_dir / "annotations.sqlite3")
    tokens, truths = prepare(location, annotators, labels_each, per_item)
    servers: list[ServerProcess] = []
    try:
        servers = [ServerProcess(data_dir, location) for _ in range(replicas)]
        urls = [server.url for server in servers]
        cpu0 = sum(_cpu_seconds(server.proc.pid) for server in servers)
        floor = asyncio.run(_floor(urls[0], annotators, labels_each)) if measure_floor else []
        cpu1 = sum(_cpu_seconds(server.proc.pid) for server in servers)
        lat: dict[str, list[float]] = {"GET /api/tasks/next": [], "POST /api/tasks/{id}/annotations": []}
        sent: list[tuple[str, str, str]] = []
        problems: list[str] = []
        retries: list[int] = []
        rngs = [random.Random(seed * 100_003 + i) for i in range(annotators)]
        fault = threading.Thread(target=during, args=(sent,), daemon=True) if during else None
        t0 = time.perf_counter()

        async def everyone() -> None:
            await asyncio.gather(*(_annotator(urls, token, labels_each, think_s, rng, lat, sent, problems, retries)
                                   for token, rng in zip(tokens, rngs)))

        if fault:
            fault.start()
        asyncio.run(everyone())
        wall = time.perf_counter() - t0
        if fault:
            fault.join(timeout=120)
        cpu2 = sum(_cpu_seconds(server.proc.pid) for server in servers)
    finally:
        for server in servers:
            server.stop()
    problems += verify(location, sent, truths, annotators * labels_each)
    calls = sum(len(v) for v in lat.values())
    kind = "postgresql" if location.startswith("postgres") else "sqlite"
    return LoadResult(annotators, labels_each, wall, lat, floor, problems, think_s=think_s,
                      server_cpu_ms_per_call=(cpu2 - cpu1) * 1000 / max(1, calls),
                      floor_cpu_ms_per_call=(cpu1 - cpu0) * 1000 / max(1, len(floor)),
                      store=kind, replicas=replicas, retried=sum(retries))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench annotate-load", description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--labels", type=int, default=100, help="labels per annotator")
    parser.add_argument("--per-item", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, help="app processes over the one store (default 1)")
    parser.add_argument("--store", help="an empty PostgreSQL database, postgresql://USER@HOST:PORT/DB (default: a SQLite file)")
    parser.add_argument("--think-ms", type=float, default=250.0,
                        help="mean pause before and after each answer in the paced run (0: skip the paced run)")
    args = parser.parse_args(argv)
    failed = False
    for think_ms in [0.0] + ([args.think_ms] if args.think_ms > 0 else []):
        with tempfile.TemporaryDirectory(prefix="prefpipe-load-") as tmp:
            # The floor is a closed loop too, so it is only comparable with the closed-loop run.
            if args.store and think_ms:
                break  # the store is used up by the first run: one fresh database per run
            result = run_load(Path(tmp), args.annotators, args.labels, args.per_item, think_ms / 1000,
                              measure_floor=think_ms == 0, store=args.store, replicas=args.replicas)
        print(result.report(), end="\n\n", flush=True)
        failed |= bool(result.problems)
    return 1 if failed else 0
