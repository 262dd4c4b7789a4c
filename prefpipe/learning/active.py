"""Active learning: which unlabelled pairs are worth a person's time.

One entry point, `select(candidates, budget, strategy)`, returning candidate positions in the order
they were chosen (the first is the most wanted):

- "uncertainty": the smallest reward-model score gap |r(a) - r(b)| first (the model is least sure);
- "diversity": k-means over prompt embeddings (MiniBatchKMeans), the item nearest each centre;
  for large budgets a two-level k-means (sqrt(budget) coarse clusters, then the budget shared
  among them by size) keeps it fast, because one assignment of a million items to 10,000 centres
  costs more than a minute on this machine;
- "hybrid": greedy on 0.6 * uncertainty + 0.4 * distance bonus, where the bonus is the distance to
  the nearest item already chosen (or already labelled), capped at a distance scale;
- "random": a seeded uniform sample, the baseline every strategy has to beat.

The hybrid greedy is exact but lazy. A candidate's bonus only shrinks as items are chosen, so a
stale bonus is an upper bound on its score: candidates are kept sorted by that bound and only the
few near the top are brought up to date (against the picks they have not yet seen) before each
choice. The seed's version recomputed every distance for every pick (`hybrid_naive`, kept as
the reference in tests and benchmarks), which is quadratic in the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from prefpipe.core.routing import BUDGET_STRATEGIES, DEFAULT_BUDGET_STRATEGY

Strategy = Literal["uncertainty", "diversity", "hybrid", "random"]
STRATEGIES: Final[tuple[str, ...]] = BUDGET_STRATEGIES
DEFAULT_STRATEGY: Final[str] = DEFAULT_BUDGET_STRATEGY
"""The strategy that measured best on the HH-RLHF helpful-base replay (`python -m prefpipe.bench
active-learning`, 20 seeds): diversity beat random by 0.6-1.1 accuracy points (about two standard
errors) from 200 labels on; uncertainty and the hybrid did not beat random there."""

UNCERTAINTY_WEIGHT: Final = 0.6
DIVERSITY_WEIGHT: Final = 0.4


@dataclass(frozen=True)
class Candidates:
    """What selection looks at, one entry per candidate pair.

    gap: reward-model score gap r(a) - r(b) (needed by uncertainty and hybrid);
    embedding: prompt embeddings, shape (n, d) (needed by diversity and hybrid);
    labelled_embedding: embeddings of items already labelled, so the hybrid's distance bonus
    also steers away from what people have already seen (optional).
    """

    gap: np.ndarray | None = None
    embedding: np.ndarray | None = None
    labelled_embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = {
            name: len(v) for name, v in (("gap", self.gap), ("embedding", self.embedding)) if v is not None
        }
        if len(set(sizes.values())) > 1:
            raise ValueError(f"candidates: gap and embedding differ in length ({sizes})")
        if self.embedding is not None and np.asarray(self.embedding).ndim != 2:
            raise ValueError("candidates: embedding must be a 2-D array (n, d)")

    def __len__(self) -> int:
        for v in (self.gap, self.embedding):
            if v is not None:
                return len(v)
        return 0

    @classmethod
    def from_texts(
        cls,
        prompts: Sequence[str],
        responses_a: Sequence[str],
        responses_b: Sequence[str],
        *,
        model=None,
        seed: int = 0,
        embedder: str = "lsa",
    ) -> Candidates:
        """Embeddings of the prompts and, when a fitted RewardModel is given, its score gaps.

        embedder: "lsa" (built in, offline, fitted on these prompts) or "sentence" (the optional
        packaged all-MiniLM-L6-v2; raises OptionalDependencyMissing when it is not installed).
        """
        from prefpipe.learning import features

        if embedder not in ("lsa", "sentence"):
            raise ValueError(f"embedder {embedder!r} is not one of lsa, sentence")
        embedding = (
            features.prompt_embeddings(prompts, seed=seed) if embedder == "lsa" else features.sentence_embeddings(prompts)
        )
        gap = None if model is None else model.gap(prompts, responses_a, responses_b)
        return cls(gap=gap, embedding=embedding)


def uncertainty_from_gap(gap: np.ndarray) -> np.ndarray:
    """1 - |2 P(A>B) - 1| = 1 - |tanh(gap / 2)|: 1 when the model is on the fence, 0 when sure.
    A missing gap (NaN) counts as fully uncertain."""
    u = 1.0 - np.abs(np.tanh(np.asarray(gap, dtype=np.float64) / 2.0))
    return np.where(np.isnan(u), 1.0, u)


def select(
    candidates: Candidates,
    budget: int,
    strategy: str = DEFAULT_STRATEGY,
    *,
    seed: int = 0,
    uncertainty_weight: float = UNCERTAINTY_WEIGHT,
    diversity_weight: float = DIVERSITY_WEIGHT,
    distance_scale: float | None = None,
) -> np.ndarray:
    """Positions (int64) of at most `budget` distinct candidates, most wanted first."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    n = len(candidates)
    budget = min(int(budget), n)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    if strategy == "random":
        return np.random.default_rng(seed).choice(n, size=budget, replace=False).astype(np.int64)
    if strategy == "uncertainty":
        return _by_uncertainty(_need(candidates.gap, "gap", strategy), budget)
    embedding = np.ascontiguousarray(_need(candidates.embedding, "embedding", strategy), dtype=np.float32)
    if strategy == "diversity":
        return diversity(embedding, budget, seed=seed)
    u = uncertainty_from_gap(_need(candidates.gap, "gap", strategy))
    return hybrid(
        u,
        embedding,
        budget,
        uncertainty_weight=uncertainty_weight,
        diversity_weight=diversity_weight,
        distance_scale=distance_scale,
        labelled=candidates.labelled_embedding,
        seed=seed,
    )


def _need(value, name: str, strategy: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"strategy {strategy!r} needs candidates.{name}")
    return np.asarray(value)


def _by_uncertainty(gap: np.ndarray, budget: int) -> np.ndarray:
    key = np.abs(np.asarray(gap, dtype=np.float64))
    key = np.where(np.isnan(key), -1.0, key)  # no score at all: most uncertain
    if budget < len(key):
        part = np.argpartition(key, budget - 1)[:budget]
    else:
        part = np.arange(len(key))
    return part[np.argsort(key[part], kind="stable")].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# diversity


def diversity(embedding: np.ndarray, budget: int, *, seed: int = 0, flat_limit: float = 3e7) -> np.ndarray:
    """k-means with `budget` clusters, then the item nearest each centre (clusters that come out
    empty or share a nearest item are made up with the next-nearest items of the largest clusters).

    One flat MiniBatchKMeans when n * budget <= flat_limit; beyond it a two-level k-means, whose
    cost grows with n * sqrt(budget) instead of n * budget.
    """
    n = len(embedding)
    budget = min(budget, n)
    if budget >= n:
        return np.arange(n, dtype=np.int64)
    import sklearn.cluster  # noqa: F401  (load its OpenMP runtime first, so the limit below reaches it)
    from threadpoolctl import threadpool_limits

    # many small k-means fits: one thread each is faster than two fighting (4x, measured here)
    with threadpool_limits(limits=1):
        if n * budget <= flat_limit:
            labels, dist = _kmeans_assign(embedding, budget, seed)
        else:
            labels, dist = _two_level_assign(embedding, budget, seed)
    return _nearest_per_cluster(labels, dist, budget)


def _kmeans_assign(x: np.ndarray, k: int, seed: int, *, fit_sample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels and each item's distance to its centre.

    Exact k-means (Lloyd, few iterations: diversity needs spread-out centres, not convergence)
    for small sets; MiniBatchKMeans fitted on at most `fit_sample` items, then every item
    assigned, for large ones.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(x)
    if n <= 20_000:
        # k-means++ seeding costs more than the fit at these sizes (sklearn's greedy variant)
        init = "k-means++" if k <= 32 else "random"
        km = KMeans(n_clusters=k, n_init=1, max_iter=10, init=init, random_state=seed).fit(x)
        labels = km.labels_.astype(np.int64)
    else:
        sample = n if fit_sample is None else min(n, max(fit_sample, 4 * k))
        fit_on = x if sample >= n else x[np.random.default_rng(seed).choice(n, sample, replace=False)]
        km = MiniBatchKMeans(
            n_clusters=k, n_init=1, batch_size=4096, max_no_improvement=5, random_state=seed,
            init="k-means++" if k <= 512 else "random", compute_labels=False,
        ).fit(fit_on)
        labels = km.predict(x).astype(np.int64)
    dist = np.linalg.norm(x - km.cluster_centers_[labels].astype(np.float32), axis=1)
    return labels, dist


def _two_level_assign(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    k1 = int(np.ceil(np.sqrt(k)))
    coarse, _ = _kmeans_assign(x, k1, seed, fit_sample=512 * k1)
    sizes = np.bincount(coarse, minlength=k1)
    share = _largest_remainder(sizes, k)
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float32)
    members_of = np.argsort(coarse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    next_label = 0
    for j in range(k1):
        members = members_of[bounds[j] : bounds[j + 1]]
        kj = int(share[j])
        if len(members) == 0:
            continue
        if kj == 0:  # too small to earn a centre of its own: its items rank last
            labels[members] = next_label
            dist[members] = np.inf
            next_label += 1
            continue
        if kj >= len(members):
            labels[members] = next_label + np.arange(len(members))
            dist[members] = 0.0
        else:
            sub_labels, sub_dist = _kmeans_assign(x[members], kj, seed + j + 1)
            labels[members] = next_label + sub_labels
            dist[members] = sub_dist
        next_label += len(members) if kj >= len(members) else kj
    return labels, dist


def _largest_remainder(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split `total` in proportion to `sizes`, no part above its size (Hamilton's method)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = total * sizes / max(int(sizes.sum()), 1)
    share = np.minimum(np.floor(exact).astype(np.int64), sizes)
    left = total - int(share.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while left > 0:
        room = order[share[order] < sizes[order]]
        if len(room) == 0:
            break
        take = room[:left]
        share[take] += 1
        left -= len(take)
    return share


def _nearest_per_cluster(labels: np.ndarray, dist: np.ndarray, budget: int) -> np.ndarray:
    """Rank items within their cluster by distance to the centre; take every cluster's nearest
    first (largest clusters first), then second-nearest, and so on until the budget is met."""
    order = np.lexsort((dist, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    run = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, run)
    size = np.repeat(run, run)
    pick = np.lexsort((order, -size, rank))[:budget]
    return order[pick].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# hybrid


def default_distance_scale(embedding: np.ndarray, *, seed: int = 0, sample: int = 2000) -> float:
    """Median distance between random pairs of items: the bonus saturates beyond it."""
    rng = np.random.default_rng(seed)
    n = len(embedding)
    if n < 2:
        return 1.0
    i = rng.integers(0, n, size=sample)
    j = rng.integers(0, n, size=sample)
    d = np.linalg.norm(embedding[i].astype(np.float64) - embedding[j], axis=1)
    d = d[i != j]
    scale = float(np.median(d)) if len(d) else 0.0
    return scale if scale > 0 else 1.0


def hybrid(
    uncertainty: np.ndarray,
    embedding: np.ndarray,
    budget: int,
    *,
    uncertainty_weight: float = UNCERTAINTY_WEIGHT,
    diversity_weight: float = DIVERSITY_WEIGHT,
    distance_scale: float | None = None,
    labelled: np.ndarray | None = None,
    seed: int = 0,
    shortlist: int = 1024,
    cache: int = 65536,
) -> np.ndarray:
    """Exact greedy on w_u * uncertainty + w_d * min(distance to nearest chosen / scale, 1).

    Equals `hybrid_naive` (up to ties) at a fraction of the cost: see the module docstring.
    BLAS runs on one thread here: the distance products are many small GEMMs, where threads
    cost more than they give (4-5x slower measured on a busy 2-core machine).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _hybrid_greedy(
            uncertainty, embedding, budget, uncertainty_weight, diversity_weight, distance_scale,
            labelled, seed, shortlist, cache,
        )


def _hybrid_greedy(
    uncertainty, embedding, budget, uncertainty_weight, diversity_weight, distance_scale, labelled, seed,
    shortlist, cache,
) -> np.ndarray:
    x = np.ascontiguousarray(embedding, dtype=np.float32)
    n = len(x)
    budget = min(int(budget), n)
    u = np.asarray(uncertainty, dtype=np.float64)
    if len(u) != n:
        raise ValueError(f"uncertainty ({len(u)}) and embedding ({n}) differ in length")
    scale = default_distance_scale(x, seed=seed) if distance_scale is None else float(distance_scale)
    wu, wd = float(uncertainty_weight), float(diversity_weight)
    sqn = np.einsum("ij,ij->i", x, x)
    d2 = np.full(n, np.inf, dtype=np.float32)  # squared distance to the nearest chosen: an upper bound
    if labelled is not None and len(labelled):
        d2 = _min_sq_dist(x, sqn, np.asarray(labelled, dtype=np.float32), d2)
    seen = np.zeros(n, dtype=np.int64)  # how many picks each d2 has been brought up to date with
    picked = np.zeros(n, dtype=bool)
    chosen = np.empty(budget, dtype=np.int64)
    chosen_x = np.empty((budget, x.shape[1]), dtype=np.float32)
    cap2 = np.float32(scale * scale)

    def bound(idx: np.ndarray) -> np.ndarray:
        return wu * u[idx] + wd * np.sqrt(np.minimum(d2[idx], cap2)) / scale

    p = 0
    cache_idx = np.empty(0, dtype=np.int64)
    cache_bound = np.inf  # every item outside the cache scores at most this
    while p < budget:
        # level 1: the cache holds the items with the highest bounds; items outside it are never
        # touched, so their best bound stays valid until the cache is rebuilt
        live = np.flatnonzero(~picked)
        if len(live) <= cache:
            cache_idx, cache_bound = live, -np.inf
        else:
            b = bound(live)
            top = np.argpartition(-b, cache)[: cache + 1]
            top = top[np.argsort(-b[top], kind="stable")]
            cache_idx, cache_bound = live[top[:cache]], float(b[top[cache]])
        while p < budget:
            # level 2: the shortlist, brought up to date exactly, is where picks are made
            cache_idx = cache_idx[~picked[cache_idx]]
            if len(cache_idx) == 0:
                break
            b = bound(cache_idx)
            if len(cache_idx) > shortlist:
                top = np.argpartition(-b, shortlist)[: shortlist + 1]
                top = top[np.argsort(-b[top], kind="stable")]
                short, short_bound = cache_idx[top[:shortlist]], max(float(b[top[shortlist]]), cache_bound)
            else:
                short, short_bound = cache_idx, cache_bound
            _refresh(x, sqn, short, chosen_x, p, d2, seen)
            # level 3: only the shortlist sees each new pick at once (local copies keep the
            # per-pick work small); the rest catch up when they next reach a shortlist
            xs, sqs, us, d2s = x[short], sqn[short], u[short], d2[short]
            score = wu * us + wd * np.sqrt(np.minimum(d2s, cap2)) / scale
            progressed = False
            while p < budget:
                best = int(np.argmax(score))
                if score[best] < short_bound or score[best] == -np.inf:
                    break
                i = int(short[best])
                chosen[p], chosen_x[p] = i, xs[best]
                picked[i] = True
                p += 1
                progressed = True
                d_new = sqs + sqs[best] - 2.0 * (xs @ xs[best])
                np.minimum(d2s, np.maximum(d_new, 0.0), out=d2s)
                score = wu * us + wd * np.sqrt(np.minimum(d2s, cap2)) / scale
                score[picked[short]] = -np.inf
            d2[short] = d2s
            seen[short] = p
            if not progressed and short_bound == cache_bound:
                break  # the cache is exhausted at this level: rebuild it from everything
    return chosen[:p]


def _refresh(x, sqn, idx, chosen_x, p, d2, seen) -> None:
    """Bring d2[idx] up to date with the first p picks, each item only against the picks it has
    not seen (grouped by how far behind they are, so old items do not make the young ones pay)."""
    behind = seen[idx] < p
    if not behind.any():
        return
    idx = idx[behind]
    idx = idx[np.argsort(seen[idx], kind="stable")]
    for group in np.array_split(idx, min(8, len(idx))):
        start = int(seen[group[0]])
        d2[group] = _min_sq_dist(x[group], sqn[group], chosen_x[start:p], d2[group])
        seen[group] = p


def _min_sq_dist(xs, sqn_s, centres, current, block: int = 1 << 21) -> np.ndarray:
    """min(current, squared distance from each row of xs to its nearest centre).

    One GEMM on augmented vectors ([x, 1] . [-2c, |c|^2] = |c|^2 - 2 x.c) and a min, in blocks
    small enough to stay in cache: the distance matrix is the cost, not the arithmetic.
    """
    out = current.copy()
    if len(centres) == 0 or len(xs) == 0:
        return out
    c_aug = np.empty((centres.shape[1] + 1, len(centres)), dtype=np.float32)
    c_aug[:-1] = -2.0 * centres.T
    c_aug[-1] = np.einsum("ij,ij->i", centres, centres)
    step = max(1, block // len(centres))
    x_aug = np.empty((min(step, len(xs)), xs.shape[1] + 1), dtype=np.float32)
    x_aug[:, -1] = 1.0
    buf = np.empty((len(x_aug), len(centres)), dtype=np.float32)
    for s in range(0, len(xs), step):
        m = min(step, len(xs) - s)
        x_aug[:m, :-1] = xs[s : s + m]
        g = np.matmul(x_aug[:m], c_aug, out=buf[:m])
        nearest = g.min(axis=1) + sqn_s[s : s + m]
        np.minimum(out[s : s + m], np.maximum(nearest, 0.0), out=out[s : s + m])
    return out


def hybrid_naive(
    uncertainty: np.ndarray,
    embedding: np.ndarray,
    budget: int,
    *,
    uncertainty_weight: float = UNCERTAINTY_WEIGHT,
    diversity_weight: float = DIVERSITY_WEIGHT,
    distance_scale: float | None = None,
    labelled: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The seed's greedy: for every pick, recompute every candidate's distance to every chosen
    item. O(n * budget^2 * d); the reference that `hybrid` must equal."""
    x = np.asarray(embedding, dtype=np.float64)
    n = len(x)
    budget = min(int(budget), n)
    u = np.asarray(uncertainty, dtype=np.float64)
    scale = default_distance_scale(x.astype(np.float32), seed=seed) if distance_scale is None else float(distance_scale)
    from scipy.spatial.distance import cdist

    base = [] if labelled is None else list(np.asarray(labelled, dtype=np.float64))
    chosen: list[int] = []
    picked = np.zeros(n, dtype=bool)
    for _ in range(budget):
        refs = np.array(base + [x[c] for c in chosen])
        dist = cdist(x, refs).min(axis=1) if len(refs) else np.full(n, np.inf)
        score = uncertainty_weight * u + diversity_weight * np.minimum(dist / scale, 1.0)
        score[picked] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        picked[best] = True
    return np.asarray(chosen, dtype=np.int64)
