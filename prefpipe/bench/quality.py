"""`python -m prefpipe.bench quality --pairs N`: the quality core beside the reference libraries.

Generates N pairs with 3 labels each from 200 simulated annotators of mixed quality (seeded, known
truth; prefpipe.quality.simulate), then times in one run prefpipe's Krippendorff alpha (ordinal),
Fleiss' kappa, Cohen's kappa table, majority vote and Dawid-Skene next to the krippendorff
package, statsmodels, a loop over scikit-learn's cohen_kappa_score and crowd-kit on the same data,
checks that the figures agree, and prints seconds, peak memory, ratios and whether each target of
issue 3 is met. Then it times alpha with a 1,000-resample bootstrap and the whole quality stage.

Each call runs once, in a forked child process: seconds are its wall clock (time.perf_counter);
peak memory is the child's peak resident set (getrusage ru_maxrss) minus its resident set just
before the call, i.e. what the call added at its peak (resource-based, not tracemalloc, so it counts native
allocations and costs nothing while timing). Reference inputs (the
annotators-by-items matrix, the items-by-raters table, the per-pair label arrays) are built
before their clock starts; prefpipe is timed from the long DataFrame the asset holds, except where
a row says "encoded".
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

MB = 1024 * 1024


@dataclass
class Row:
    figure: str
    ours_s: float
    ours_mb: float
    reference: str = ""
    ref_s: float = float("nan")
    ref_mb: float = float("nan")
    target: str = ""
    met: bool | None = None
    check: str = ""


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def measure(fn: Callable[[], object], summarize: Callable[[object], object] = lambda r: r) -> tuple[float, float, object]:
    """(seconds, peak MB, summarize(fn())) from one call in a forked child process.

    Peak MB is the child's peak resident set (ru_maxrss) minus its resident set just before the
    call, i.e. the memory the call itself added at its peak. The child sends back only
    summarize(result), so pickling a large result does not count."""
    gc.collect()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        code = 0
        try:
            base = _rss_mb()
            start = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - start
            payload = pickle.dumps((seconds, base, summarize(result), None))
        except BaseException as exc:  # report it in the parent
            payload = pickle.dumps((float("nan"), 0.0, None, repr(exc)))
            code = 1
        with os.fdopen(write_end, "wb") as fh:
            fh.write(payload)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, _, usage = os.wait4(pid, 0)
    seconds, base, summary, error = pickle.loads(data)
    if error:
        raise RuntimeError(f"benchmarked call failed in the child process: {error}")
    return seconds, usage.ru_maxrss / 1024 - base, summary


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:,.{digits}f}"


def print_table(rows: list[Row], n_pairs: int) -> None:
    print(f"\n## prefpipe quality core at {n_pairs:,} pairs ({3 * n_pairs:,} labels)\n")
    print("| figure | prefpipe s | prefpipe peak MB | reference | reference s | reference peak MB | speed-up | target | met | check |")
    print("|---|---:|---:|---|---:|---:|---:|---|---|---|")
    for r in rows:
        ratio = r.ref_s / r.ours_s if r.ref_s == r.ref_s else float("nan")
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        print(
            f"| {r.figure} | {_fmt(r.ours_s, 3)} | {_fmt(r.ours_mb, 0)} | {r.reference or '-'} | {_fmt(r.ref_s)} | "
            f"{_fmt(r.ref_mb, 0)} | {_fmt(ratio, 1) + 'x' if ratio == ratio else '-'} | {r.target} | {met} | {r.check} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench quality", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs to simulate (3 labels each)")
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the interval rows")
    parser.add_argument("--no-reference", action="store_true", help="time prefpipe only")
    args = parser.parse_args(argv)

    from prefpipe.quality import (
        Annotations,
        agreement_report,
        annotator_reliability,
        cohens_kappa_table,
        filter_annotations,
        fit_dawid_skene,
        fleiss_kappa,
        gold_labels,
        krippendorff_alpha,
        krippendorff_alpha_estimate,
        majority_vote,
    )
    from prefpipe.quality.kappa import annotator_pairs
    from prefpipe.quality.simulate import simulate_batch

    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i.get('internal_api')} {i.get('architecture', '')} threads={i.get('num_threads')}" for i in threadpool_info())
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        blas = "unknown"
    print(f"machine: {os.cpu_count()} cores; BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")

    t0 = time.perf_counter()
    batch = simulate_batch(args.pairs, n_annotators=args.annotators, seed=args.seed)
    df = batch.annotations
    truth = batch.truth
    print(f"simulated {args.pairs:,} pairs, {len(df):,} labels, {args.annotators} annotators in {time.perf_counter() - t0:.1f} s")
    rows: list[Row] = []
    ann = Annotations.from_frame(df)
    codes = ann.label.astype(np.float64)
    ref = not args.no_reference

    def accuracy(labels: pd.Series) -> float:
        return float((labels.reindex(truth.index) == truth).mean())

    # Krippendorff's alpha (ordinal). Like for like: the package is given the annotators x items
    # matrix it takes, prefpipe the Annotations it takes (an asset encodes once for all figures);
    # the row after shows prefpipe from the raw long DataFrame, encoding included.
    s, mb, ours = measure(lambda: krippendorff_alpha(ann, "ordinal"))
    row = Row("Krippendorff alpha, ordinal (given Annotations)", s, mb, target="<1 s and >=10x faster", check=f"alpha = {ours:.4f}")
    s_df, mb_df, _ = measure(lambda: krippendorff_alpha(df, "ordinal"))
    row_df = Row("Krippendorff alpha, ordinal (given the long DataFrame)", s_df, mb_df, target="(information)")
    if ref:
        import krippendorff

        matrix = np.full((ann.n_annotators, ann.n_items), np.nan)
        matrix[ann.annotator, ann.item] = codes
        rs, rmb, theirs = measure(lambda: krippendorff.alpha(matrix, level_of_measurement="ordinal", value_domain=np.arange(5.0)))
        del matrix
        for r in (row, row_df):
            r.reference, r.ref_s, r.ref_mb = "krippendorff.alpha (annotators x items matrix)", rs, rmb
        row.check = f"|diff| = {abs(ours - theirs):.1e}"
        row.met = s < 1.0 and rs / s >= 10
    else:
        row.met = s < 1.0
    rows += [row, row_df]
    s2, mb2, _ = measure(lambda: Annotations.from_frame(df))
    rows.append(Row("encoding the long DataFrame once (Annotations.from_frame)", s2, mb2, target="(information)"))

    # Fleiss' kappa (statsmodels is given its items x raters table, prefpipe the Annotations)
    s, mb, ours = measure(lambda: fleiss_kappa(ann))
    row = Row("Fleiss kappa (given Annotations)", s, mb, target="<0.5 s", met=s < 0.5, check=f"kappa = {ours:.4f}")
    s_df, mb_df, _ = measure(lambda: fleiss_kappa(df))
    row_df = Row("Fleiss kappa (given the long DataFrame)", s_df, mb_df, target="(information)")
    if ref:
        from statsmodels.stats.inter_rater import aggregate_raters
        from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

        order = np.lexsort((ann.annotator, ann.item))
        raters = ann.label[order].reshape(ann.n_items, -1)
        rs, rmb, theirs = measure(lambda: sm_fleiss(aggregate_raters(raters, n_cat=5)[0]))
        for r in (row, row_df):
            r.reference, r.ref_s, r.ref_mb = "statsmodels aggregate_raters + fleiss_kappa", rs, rmb
        row.check = f"|diff| = {abs(ours - theirs):.1e}"
    rows += [row, row_df]

    # Cohen's kappa table over every annotator pair
    s, mb, ours_k = measure(lambda: cohens_kappa_table(df, min_shared=1), lambda t: np.sort(t["kappa"].to_numpy()))
    row = Row(f"Cohen kappa table ({len(ours_k):,} pairs)", s, mb, target=">=10x faster than the loop")
    if ref:
        from sklearn.metrics import cohen_kappa_score

        r1, r2 = annotator_pairs(ann)
        key = ann.annotator[r1] * ann.n_annotators + ann.annotator[r2]
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        la = np.split(ann.label[r1][order], bounds)
        lb = np.split(ann.label[r2][order], bounds)
        rs, rmb, theirs_k = measure(
            lambda: [cohen_kappa_score(x, y) for x, y in zip(la, lb)], lambda r: np.sort(np.asarray(r, dtype=float))
        )
        del la, lb
        row.reference, row.ref_s, row.ref_mb = "loop of sklearn cohen_kappa_score", rs, rmb
        same = len(ours_k) == len(theirs_k) and np.array_equal(np.isnan(ours_k), np.isnan(theirs_k))
        row.check = f"max |diff| = {np.nanmax(np.abs(ours_k - theirs_k)):.1e}" if same else "pair counts differ!"
        row.met = rs / s >= 10
    rows.append(row)

    # Majority vote and Dawid-Skene against crowd-kit
    ck_frame = df.rename(columns={"pair_id": "task", "annotator_id": "worker"})[["task", "worker", "label"]] if ref else None
    s, mb, mv_acc = measure(lambda: majority_vote(df), lambda r: accuracy(r.set_index("pair_id")["label"]))
    row = Row("majority vote", s, mb, target=">=5x faster than crowd-kit")
    if ref:
        from crowdkit.aggregation import DawidSkene, MajorityVote

        rs, rmb, ck_mv = measure(lambda: MajorityVote().fit_predict(ck_frame), accuracy)
        row.reference, row.ref_s, row.ref_mb = "crowd-kit MajorityVote", rs, rmb
        row.check = f"accuracy {mv_acc:.4f} vs {ck_mv:.4f} (tie rules differ)"
        row.met = rs / s >= 5
    rows.append(row)

    s, mb, (ds_acc, ds_iter) = measure(lambda: fit_dawid_skene(df), lambda f: (accuracy(f.labels().set_index("pair_id")["label"]), f.n_iter))
    row = Row(f"Dawid-Skene ({ds_iter} iterations)", s, mb, target=">=5x faster, same accuracy, <1 GB")
    if ref:

        def crowdkit_ds() -> tuple[pd.Series, int]:
            model = DawidSkene(n_iter=100)
            return model.fit_predict(ck_frame), len(model.loss_history_)

        rs, rmb, (ck_acc, ck_iter) = measure(crowdkit_ds, lambda r: (accuracy(r[0]), r[1]))
        row.reference, row.ref_s, row.ref_mb = f"crowd-kit DawidSkene ({ck_iter} iterations)", rs, rmb
        row.check = f"accuracy {ds_acc:.4f} vs {ck_acc:.4f} (majority {mv_acc:.4f})"
        row.met = rs / s >= 5 and ds_acc >= ck_acc - 0.001 and mb < 1024
    else:
        row.check = f"accuracy {ds_acc:.4f} (majority {mv_acc:.4f})"
        row.met = mb < 1024
    rows.append(row)
    ck_frame = None  # free it before the timings below (the closures above hold the same cell)

    # Alpha with a bootstrap interval
    s, mb, est = measure(lambda: krippendorff_alpha_estimate(df, "ordinal", n_boot=args.boot, seed=0))
    rows.append(Row(f"alpha + {args.boot}-resample bootstrap", s, mb, target="<60 s", met=s < 60, check=f"{est.value:.4f} [{est.ci_low:.4f}, {est.ci_high:.4f}]"))

    # The whole quality stage, as the assets run it
    def stage() -> dict:
        reliability = annotator_reliability(df)
        kept, summary = filter_annotations(df, reliability)
        kept_ann = Annotations.from_frame(kept)
        final = fit_dawid_skene(kept_ann, gold=gold_labels(kept)).labels()
        report = agreement_report(kept_ann, n_boot=args.boot, seed=0)
        return {"reliability": reliability, "summary": summary, "final": final, "report": report}

    def stage_summary(out: dict) -> dict:
        kinds = batch.kinds.reindex(out["reliability"]["annotator_id"]).to_numpy()
        return {
            "summary": out["summary"],
            "report_rows": len(out["report"]),
            "kept_by_kind": pd.crosstab(kinds, out["reliability"]["kept"].to_numpy()),
            "final_accuracy": accuracy(out["final"].set_index("pair_id")["label"]),
        }

    s, mb, out = measure(stage, stage_summary)
    summary = out["summary"]
    rows.append(
        Row(
            "whole quality stage (reliability, filter, DS with gold, agreement report with CIs)", s, mb,
            target="<60 s", met=s < 60,
            check=f"dropped {summary['annotators_dropped']} annotators / {summary['labels_dropped']:,} labels; "
            f"final-label accuracy {out['final_accuracy']:.4f}; {out['report_rows']:,} report rows",
        )
    )
    print_table(rows, args.pairs)
    print("\nkept annotators by simulated kind:\n" + out["kept_by_kind"].to_string())
    print("\nmemory: peak resident set added by the call (ru_maxrss of a forked child minus its RSS before the call)")
    return 0 if all(r.met is not False for r in rows) else 1
