"""Item-resampling bootstrap intervals, vectorized and seeded, fast at a million items.

Two exact shortcuts make 1,000 resamples of a million items cheap:

- Batch figures (alpha, Fleiss' kappa, raw agreement) depend on an item only through its label
  counts (its "pattern", e.g. two A>B and one A=B). Resampling N items with replacement is the
  same as drawing how many times each distinct pattern appears: one Multinomial(N, pattern
  frequencies) draw per resample. There are few distinct patterns (35 for three labels on five
  points), so a resample costs O(patterns), not O(items). `pattern_weights` draws them.
- An annotator pair's kappa depends on its shared items only through the pair's contingency
  table. Resampling a pair's n items is drawn once per distinct n as a (resamples x n) matrix of
  multiplicities, shared by every pair with that n; each pair's resampled table is then read off
  by cumulative sums over its items sorted by cell. Each pair's bootstrap distribution is exact;
  pairs of the same size share their random draws, which does not affect any one pair's interval
  (only joint statements across pairs, which we never make). `table_intervals` does this.

Intervals are percentile intervals over the resamples whose statistic is defined (a resample can
make a statistic undefined, e.g. every drawn label identical); `n_valid` says how many.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

_MAX_SHARED_N = 20_000  # above this many items, a pair is resampled by a direct multinomial draw
_CHUNK_CELLS = 4_000_000  # bound on (pairs x resamples x cells) held at once


def rng_for(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def distinct_patterns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an (items x categories) count matrix and how many items have each."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape[0] == 0:
        return counts, np.zeros(0, dtype=np.int64)
    base = int(counts.max()) + 1
    k = counts.shape[1]
    if k * np.log2(max(base, 2)) < 62:  # pack each row into one int64 key
        key = counts @ (base ** np.arange(k, dtype=np.int64))
        if base**k <= 4 * counts.shape[0] + 1024:  # few possible keys: count them directly, O(n)
            freq_all = np.bincount(key, minlength=base**k)
            present = np.flatnonzero(freq_all)
            patterns = (present[:, None] // base ** np.arange(k, dtype=np.int64)) % base
            return patterns, freq_all[present]
        _, first, freq = np.unique(key, return_index=True, return_counts=True)
        return counts[first], freq
    patterns, freq = np.unique(counts, axis=0, return_counts=True)
    return patterns, freq


def pattern_weights(freq: np.ndarray, n_boot: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """(n_boot x patterns) multiplicities: each row is one item resample of sum(freq) items."""
    freq = np.asarray(freq, dtype=np.float64)
    n = int(freq.sum())
    rng = rng_for(seed)
    return rng.multinomial(n, freq / n, size=n_boot).astype(np.float64)


def percentile_interval(samples: np.ndarray, ci: float = 0.95, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, n_valid) percentile interval over the finite samples along `axis` (numpy's
    default linear interpolation). One sort for all rows: np.nanquantile loops row by row."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), not {ci}")
    samples = np.moveaxis(np.asarray(samples, dtype=np.float64), axis, -1)
    ordered = np.sort(np.where(np.isfinite(samples), samples, np.nan), axis=-1)  # NaN sorts last
    n_valid = np.isfinite(ordered).sum(axis=-1)
    tail = (1 - ci) / 2
    bounds = []
    for q in (tail, 1 - tail):
        pos = q * np.maximum(n_valid - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(n_valid - 1, 0))
        a = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
        b = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
        bounds.append(np.where(n_valid > 0, a + (pos - lo) * (b - a), np.nan))
    return bounds[0], bounds[1], n_valid


def table_intervals(
    tables: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals for a statistic of each group's count table, resampling each group's
    items. `tables` is (groups x cells) integer counts (a flattened contingency table per pair);
    `statistic` maps (..., cells) float counts to (...) values. Returns (low, high) per group."""
    tables = np.asarray(tables, dtype=np.int64)
    g, c = tables.shape
    rng = rng_for(seed)
    low = np.full(g, np.nan)
    high = np.full(g, np.nan)
    sizes = tables.sum(axis=1)
    for n in np.unique(sizes):
        idx = np.flatnonzero(sizes == n)
        if n == 0:
            continue
        if n > _MAX_SHARED_N:
            for j in idx:
                draws = rng.multinomial(int(n), tables[j] / n, size=n_boot).astype(np.float64)
                lo, hi, _ = percentile_interval(statistic(draws), ci)
                low[j], high[j] = lo, hi
            continue
        # multiplicity of each of the n items in each resample, as cumulative sums with a 0 column
        picks = rng.integers(0, n, size=(n_boot, int(n)))
        mult = np.zeros((n_boot, int(n) + 1), dtype=np.int32)
        _count_rows(mult, picks)
        cum = np.cumsum(mult, axis=1, dtype=np.int32)
        bounds = np.concatenate([np.zeros((idx.size, 1), dtype=np.int64), np.cumsum(tables[idx], axis=1)], axis=1)
        step = max(1, _CHUNK_CELLS // (n_boot * (c + 1)))
        for s in range(0, idx.size, step):
            b = bounds[s : s + step]  # (chunk, c+1)
            at = cum[:, b]  # (n_boot, chunk, c+1)
            resampled = np.diff(at, axis=2).astype(np.float64).transpose(1, 0, 2)  # (chunk, n_boot, c)
            lo, hi, _ = percentile_interval(statistic(resampled), ci, axis=1)
            low[idx[s : s + step]] = lo
            high[idx[s : s + step]] = hi
    return low, high


def _count_rows(mult: np.ndarray, picks: np.ndarray) -> None:
    """mult[b, picks[b, j] + 1] += 1 for every b, j, via one bincount."""
    n_boot, width = mult.shape
    flat = (np.arange(n_boot, dtype=np.int64)[:, None] * width + picks + 1).ravel()
    mult += np.bincount(flat, minlength=n_boot * width).reshape(n_boot, width).astype(np.int32)


class Estimate(NamedTuple):
    """A figure with its bootstrap interval (NaN bounds when none was asked for) and the number of
    items it rests on."""

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n_items: int = 0


def pattern_estimate(
    counts: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    n_boot: int,
    ci: float,
    seed: int | np.random.Generator | None,
) -> Estimate:
    """A batch statistic of the items' label counts with its item-resampling interval.

    `counts` is (items x categories) for the items that carry information (two or more labels);
    `statistic(patterns, weights)` computes the figure for each row of `weights` (resamples x
    patterns multiplicities) and returns one value per row."""
    patterns, freq = distinct_patterns(counts)
    value = float(statistic(patterns, freq[None, :].astype(np.float64))[0])
    if n_boot <= 0:
        return Estimate(value, n_items=int(freq.sum()))
    weights = pattern_weights(freq, n_boot, seed)
    low, high, _ = percentile_interval(statistic(patterns, weights), ci)
    return Estimate(value, float(low), float(high), int(freq.sum()))
