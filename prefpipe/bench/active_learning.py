"""`python -m prefpipe.bench active-learning`: what active learning really saves, on real data.

Replays Anthropic HH-RLHF helpful-base (test split, 2,352 usable pairs; "chosen" is the oracle
label): per seed, hold out a test set, start from a small random seed set of labels, then add
labels in rounds chosen by each strategy (uncertainty, diversity, hybrid) and by random sampling,
retraining the Bradley-Terry reward model every round. Prints mean test accuracy per strategy per
number of labels (with the standard error of the paired difference to random over seeds), and
how many labels each strategy needed to reach random sampling's final accuracy.

The features are computed once and each pair's A/B order is drawn at random per seed, so the
model cannot learn "A wins".
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hh_rlhf" / "helpful-base" / "test.jsonl.gz"
STRATEGY_ORDER = ("random", "uncertainty", "diversity", "hybrid")


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m prefpipe.bench active-learning", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HH-RLHF jsonl(.gz) file (default: helpful-base test)")
    ap.add_argument("--seeds", type=int, default=20, help="independent replays to average (>= 5)")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--initial", type=int, default=50, help="random seed-set size")
    ap.add_argument("--step", type=int, default=50, help="labels added per round")
    ap.add_argument("--max-labels", type=int, default=600)
    ap.add_argument("--C", type=float, default=None, help="reward model regularisation (default: the model's)")
    ap.add_argument("--strategies", default=",".join(STRATEGY_ORDER))
    return ap.parse_args(argv)


def replay(args: argparse.Namespace) -> dict:
    """Run every strategy on every seed; return accuracies[strategy] of shape (seeds, rounds)."""
    from prefpipe.learning.active import Candidates, select
    from prefpipe.learning.features import prompt_embeddings
    from prefpipe.learning.hh_rlhf import load_hh_pairs
    from prefpipe.learning.reward_model import RewardModel

    loaded = load_hh_pairs(args.data)
    pairs = loaded.pairs
    model_kwargs = {} if args.C is None else {"C": args.C}
    t0 = time.perf_counter()
    featurizer = RewardModel(**model_kwargs)
    diff = featurizer.difference(pairs["prompt"].tolist(), pairs["chosen"].tolist(), pairs["rejected"].tolist()).tocsr()
    embedding = prompt_embeddings(pairs["prompt"].tolist(), seed=0)
    feature_seconds = time.perf_counter() - t0

    n = len(pairs)
    n_test = int(round(args.test_fraction * n))
    budgets = list(range(args.initial, args.max_labels + 1, args.step))
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    acc = {s: np.full((args.seeds, len(budgets)), np.nan) for s in strategies}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        test, pool = order[:n_test], order[n_test:]
        # orientation: +1 shows chosen as A, -1 shows it as B (the oracle label follows)
        sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
        oriented = diff.multiply(sign[:, None]).tocsr()
        a_wins = (sign > 0).astype(int)
        initial = rng.choice(pool, size=args.initial, replace=False)
        for strategy in strategies:
            labelled = list(initial)
            model = None  # fitted at the end of each round; chooses the next round's labels
            for r, budget in enumerate(budgets):
                if r > 0:
                    labelled_set = np.asarray(labelled)
                    unlabelled = np.setdiff1d(pool, labelled_set, assume_unique=True)
                    want = budget - len(labelled)
                    gap = oriented[unlabelled] @ model.coef_ if strategy in ("uncertainty", "hybrid") else None
                    cands = Candidates(
                        gap=gap,
                        embedding=embedding[unlabelled],
                        labelled_embedding=embedding[labelled_set] if strategy == "hybrid" else None,
                    )
                    picked = select(cands, want, strategy, seed=seed * 1000 + r)
                    labelled.extend(unlabelled[picked].tolist())
                idx = np.asarray(labelled)
                model = RewardModel(**model_kwargs).fit_difference(oriented[idx], a_wins[idx])
                g = oriented[test] @ model.coef_
                acc[strategy][seed, r] = float(np.mean(np.where(g == 0, 0.5, (g > 0) == (a_wins[test] == 1))))
    return {
        "acc": acc, "budgets": budgets, "n_pairs": n, "n_test": n_test, "dropped": loaded.dropped_identical,
        "feature_seconds": feature_seconds,
    }


def labels_to_reach(curve: np.ndarray, budgets: list[int], target: float) -> int | None:
    """The first budget from which the curve stays at or above target (a curve that touches it once
    and falls back has not reached it: counting that would overstate the saving)."""
    below = np.flatnonzero(~(curve >= target - 1e-12))  # NaN counts as below
    first = 0 if len(below) == 0 else int(below[-1]) + 1
    return budgets[first] if first < len(budgets) else None


def report(result: dict, seeds: int) -> str:
    acc, budgets = result["acc"], result["budgets"]
    strategies = list(acc)
    lines = [
        f"HH-RLHF helpful-base: {result['n_pairs']} pairs ({result['dropped']} identical dropped), "
        f"{result['n_test']} held out per seed, {seeds} seeds; mean test accuracy "
        "(in brackets: mean paired difference to random +- its standard error, points)",
        "labels | " + " | ".join(f"{s:>20}" for s in strategies),
    ]
    base = acc.get("random")
    for j, b in enumerate(budgets):
        cells = []
        for s in strategies:
            mean = np.nanmean(acc[s][:, j])
            if base is not None and s != "random":
                d = (acc[s][:, j] - base[:, j]) * 100
                cells.append(f"{mean:.3f} ({d.mean():+.1f}+-{d.std(ddof=1) / np.sqrt(len(d)):.1f})")
            else:
                cells.append(f"{mean:.3f}")
        lines.append(f"{b:>6} | " + " | ".join(f"{c:>20}" for c in cells))
    if base is not None:
        target = float(np.nanmean(base[:, -1]))
        lines.append(f"labels needed to reach and stay at random's final accuracy {target:.3f} (random needed {budgets[-1]}):")
        for s in strategies:
            need = labels_to_reach(np.nanmean(acc[s], axis=0), budgets, target)
            saving = f"{budgets[-1] / need:.2f}x fewer" if need else "-"
            lines.append(f"  {s:<12} {need if need is not None else f'not reached within {budgets[-1]}':>28}  {saving}")
        finals = {s: float(np.nanmean(acc[s][:, -1])) for s in strategies}
        mean_all = {s: float(np.nanmean(acc[s][:, 1:])) for s in strategies}
        lines.append(
            "mean accuracy over all rounds after the seed set: "
            + ", ".join(f"{s} {v:.4f}" for s, v in sorted(mean_all.items(), key=lambda kv: -kv[1]))
        )
        lines.append("final accuracy: " + ", ".join(f"{s} {v:.4f}" for s, v in sorted(finals.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.seeds < 5:
        print("note: fewer than 5 seeds: differences below are mostly noise")
    if not args.data.is_file():
        print(f"data file {args.data} not found (the shared data folder ships beside the project)")
        return 2
    t0 = time.perf_counter()
    result = replay(args)
    print(report(result, args.seeds))
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
        f"features {result['feature_seconds']:.1f} s, total {time.perf_counter() - t0:.0f} s"
    )
    return 0
