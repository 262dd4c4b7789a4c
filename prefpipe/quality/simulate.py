"""Simulated annotation batches with a known truth, for benchmarks and tests at any size.

Why simulate: the real crowd sets are small (at most 100K labels) and carry no durations or gold
flags; the benchmark needs a million pairs of five-point preference labels with every kind of
annotator the quality stage must tell apart. Everything is drawn with one seeded generator and
without a Python loop per pair.

Annotator kinds (shares of the pool): careful (45%, right 85% of the time, errors to a
neighbouring point), sloppy (25%, right 55%, errors anywhere), biased (15%, shift every judgement
one point towards A), random clickers (15%, uniform labels, about 2 s per task). Each pair gets
`labels_per_pair` distinct annotators; `gold_share` of the pairs are gold questions whose gold
label is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prefpipe.core.labels import SCALE

KINDS: tuple[str, ...] = ("careful", "sloppy", "biased", "random")
KIND_SHARES: tuple[float, ...] = (0.45, 0.25, 0.15, 0.15)
TRUTH_SHARES: tuple[float, ...] = (0.15, 0.30, 0.10, 0.30, 0.15)


@dataclass(frozen=True)
class SimulatedBatch:
    annotations: pd.DataFrame  # pair_id, annotator_id, label, duration_s, is_gold, gold_label
    truth: pd.Series  # pair_id -> true label
    kinds: pd.Series  # annotator_id -> kind
    confusion: np.ndarray  # (annotators x 5 x 5) the true confusion matrices


def _confusions(kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = len(SCALE)
    idx = np.arange(k)
    near = np.exp(-np.abs(idx[:, None] - idx[None, :]).astype(float))
    np.fill_diagonal(near, 0.0)
    near /= near.sum(axis=1, keepdims=True)
    out = np.empty((len(kinds), k, k))
    for j, kind in enumerate(KINDS):
        sel = kinds == j
        n = int(sel.sum())
        if kind == "careful":
            acc = rng.uniform(0.78, 0.92, n)[:, None, None]
            out[sel] = acc * np.eye(k) + (1 - acc) * near
        elif kind == "sloppy":
            acc = rng.uniform(0.45, 0.65, n)[:, None, None]
            out[sel] = acc * np.eye(k) + (1 - acc) * (1 - np.eye(k)) / (k - 1)
        elif kind == "biased":
            shift = np.zeros((k, k))
            shift[idx, np.maximum(idx - 1, 0)] = 1.0  # every judgement one point towards A
            out[sel] = 0.8 * shift + 0.2 * near
        else:
            out[sel] = np.full((k, k), 1.0 / k)
    return out


def simulate_batch(
    n_pairs: int,
    *,
    n_annotators: int = 200,
    labels_per_pair: int = 3,
    gold_share: float = 0.10,
    seed: int = 0,
) -> SimulatedBatch:
    """A batch of `n_pairs` pairs labelled by `labels_per_pair` distinct annotators each."""
    if labels_per_pair > n_annotators:
        raise ValueError("labels_per_pair cannot exceed n_annotators")
    rng = np.random.default_rng(seed)
    k = len(SCALE)
    kinds = rng.choice(len(KINDS), size=n_annotators, p=KIND_SHARES)
    confusion = _confusions(kinds, rng)
    truth = rng.choice(k, size=n_pairs, p=TRUTH_SHARES)

    # distinct annotators per pair: offsets from a random first annotator, without repeats
    first = rng.integers(0, n_annotators, n_pairs)
    offsets = np.zeros((n_pairs, labels_per_pair), dtype=np.int64)
    for j in range(1, labels_per_pair):
        draw = rng.integers(1, n_annotators - j + 1, n_pairs)
        for prev in np.sort(offsets[:, 1:j], axis=1).T:  # skip offsets already taken, in order
            draw = draw + (draw >= prev)
        offsets[:, j] = draw
    ann = ((first[:, None] + offsets) % n_annotators).ravel()
    pair = np.repeat(np.arange(n_pairs), labels_per_pair)
    t = truth[pair]
    cum = np.cumsum(confusion[ann, t], axis=1)
    label = (rng.random(ann.size)[:, None] > cum[:, :-1]).sum(axis=1)

    speed = np.where(kinds == KINDS.index("random"), 2.0, rng.uniform(6.0, 30.0, n_annotators))
    duration = rng.gamma(4.0, speed[ann] / 4.0)
    gold_pair = rng.random(n_pairs) < gold_share
    is_gold = gold_pair[pair]

    pair_ids = pd.Index(np.char.add("pair-", np.arange(n_pairs).astype(str)), dtype=object)
    annotator_ids = np.array([f"ann-{j:03d}" for j in range(n_annotators)], dtype=object)
    scale = np.asarray(SCALE, dtype=object)
    gold_label = np.where(is_gold, scale[t], None)
    frame = pd.DataFrame(
        {
            "pair_id": pair_ids[pair],
            "annotator_id": annotator_ids[ann],
            "label": scale[label],
            "duration_s": duration,
            "is_gold": is_gold,
            "gold_label": gold_label,
        }
    )
    return SimulatedBatch(
        annotations=frame,
        truth=pd.Series(scale[truth], index=pair_ids, name="truth"),
        kinds=pd.Series(np.asarray(KINDS, dtype=object)[kinds], index=annotator_ids, name="kind"),
        confusion=confusion,
    )
