"""`python -m prefpipe.bench selection`: time active-learning selection at scale.

Chooses --budget (10,000) of --n (1,000,000) candidates with --dim (64) dimensional embeddings
for each strategy. The embeddings are clustered (a mixture of 2,000 Gaussian topics, unit
length), as prompt embeddings are; score gaps are normal. Then it runs the seed's naive
greedy hybrid (recompute every distance for every pick) beside prefpipe's lazy exact hybrid at a
size the naive one can finish, checks they choose the same items, and prints the ratio and the
naive cost extrapolated to the full size (it grows with n * budget^2).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((2000, dim)).astype(np.float32)
    x = topics[rng.integers(0, len(topics), n)]
    x += 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    gap = rng.standard_normal(n) * 2.0
    return x, gap


def main(argv: list[str]) -> int:
    from prefpipe.learning import active

    ap = argparse.ArgumentParser(prog="python -m prefpipe.bench selection", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--strategies", default=",".join(active.STRATEGIES))
    ap.add_argument("--naive-n", type=int, default=10_000)
    ap.add_argument("--naive-budget", type=int, default=200)
    args = ap.parse_args(argv)

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    x, gap = synthetic(args.n, args.dim)
    cands = active.Candidates(gap=gap, embedding=x)
    print(f"choosing {args.budget:,} of {args.n:,} candidates ({args.dim}-dim embeddings)")
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        t = time.perf_counter()
        picked = active.select(cands, args.budget, strategy, seed=0)
        dt = time.perf_counter() - t
        ok = len(picked) == args.budget and len(np.unique(picked)) == len(picked)
        print(f"  {strategy:<12} {dt:8.2f} s  {'ok' if ok else 'WRONG: duplicates or short'}")

    xs, gs = synthetic(args.naive_n, args.dim, seed=1)
    u = active.uncertainty_from_gap(gs)
    t = time.perf_counter()
    naive = active.hybrid_naive(u, xs, args.naive_budget)
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    lazy = active.hybrid(u, xs, args.naive_budget)
    t_lazy = time.perf_counter() - t
    same = np.array_equal(naive, lazy)
    print(
        f"hybrid at {args.naive_n:,} / {args.naive_budget:,}: naive recompute-all greedy {t_naive:.2f} s, "
        f"prefpipe lazy greedy {t_lazy:.3f} s ({t_naive / t_lazy:.0f}x faster), same picks: {same}"
    )
    scale = (args.n / args.naive_n) * (args.budget / args.naive_budget) ** 2
    print(f"naive greedy extrapolated to {args.n:,} / {args.budget:,}: about {t_naive * scale / 3600:,.0f} hours")
    return 0 if same else 1
