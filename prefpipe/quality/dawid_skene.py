"""Dawid-Skene: EM over per-annotator confusion matrices (Dawid & Skene 1979).

Each annotator a has a confusion matrix pi_a[true, given]; each item's true label has a prior. EM
alternates the posterior of each item's true label (E-step) with the maximum-likelihood confusion
matrices and prior under those posteriors (M-step). It beats majority vote when annotators differ
in skill or in bias (one says "A>B" where others say "A=B").

The procedure follows crowd-kit's DawidSkene so the two agree: start from majority-vote shares,
floor every confusion entry at 1e-10, and stop when the evidence lower bound per label improves by
less than `tol` (default 1e-5) or after `max_iter` iterations. Gold labels, when given, are held
fixed as certain posteriors throughout. Both steps are two sparse-matrix products over the labels,
so one iteration over three million labels takes a fraction of a second.

`smoothing` adds a Dirichlet pseudo-count to every confusion cell (MAP instead of ML): 0 keeps the
classic estimator. The fit keeps each annotator's confusion matrix and estimated accuracy, so
reliability reads them from the same fit instead of running EM twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from prefpipe.quality._frames import Annotations, as_annotations
from prefpipe.quality.aggregation import result_frame
from prefpipe.quality.errors import QualityInputError, UnknownLabelError

_FLOOR = 1e-10


@dataclass(eq=False)
class DawidSkeneFit:
    """A fitted Dawid-Skene model.

    posteriors: (items x K) P(true label | labels); priors: (K,); confusion: (annotators x K x K)
    with confusion[a, t, g] = P(annotator a gives g | true label t)."""

    annotations: Annotations
    posteriors: np.ndarray
    priors: np.ndarray
    confusion: np.ndarray
    n_iter: int
    converged: bool
    elbo: list[float] = field(default_factory=list)
    gold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def labels(self, ties: str = "auto") -> pd.DataFrame:
        """One row per item: <item>, label (highest posterior; ties by the rule of
        prefpipe.quality.ties), confidence (its posterior), n_labels. Items with neither a
        label nor gold get label None."""
        ann = self.annotations
        base = (ann.labels_per_item() > 0).astype(np.float64)
        base[self.gold_items] = 1.0
        return result_frame(ann, self.posteriors, confidence_base=base, ties=ties)

    @property
    def accuracy(self) -> pd.Series:
        """Per annotator: the mean posterior probability that their label is the true one, over the
        items they labelled (their estimated accuracy on the items they actually saw)."""
        ann = self.annotations
        right = self.posteriors[ann.item, ann.label]
        n = np.bincount(ann.annotator, minlength=ann.n_annotators)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.bincount(ann.annotator, weights=right, minlength=ann.n_annotators) / n
        return pd.Series(acc, index=ann.annotators, name="ds_accuracy")

    def confusion_frame(self) -> pd.DataFrame:
        """Long form of the confusion matrices: annotator, true_label, label, probability."""
        ann = self.annotations
        k = ann.n_categories
        a, t, g = np.meshgrid(np.arange(ann.n_annotators), np.arange(k), np.arange(k), indexing="ij")
        cats = np.asarray(ann.categories, dtype=object)
        return pd.DataFrame(
            {
                ann.annotator_name: ann.annotators.to_numpy()[a.ravel()],
                "true_label": cats[t.ravel()],
                "label": cats[g.ravel()],
                "probability": self.confusion.ravel(),
            }
        )

    def confusion_matrix(self, annotator_id: object) -> pd.DataFrame:
        """One annotator's confusion matrix: rows true label, columns given label."""
        ann = self.annotations
        pos = ann.annotators.get_loc(annotator_id)
        return pd.DataFrame(self.confusion[pos], index=pd.Index(ann.categories, name="true_label"), columns=pd.Index(ann.categories, name="label"))


def gold_codes(ann: Annotations, gold: Mapping | pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """(item codes, category codes) of gold labels for items present in `ann`; gold for other
    items is ignored (a project-wide gold table may cover items outside this batch)."""
    if gold is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    series = pd.Series(gold) if not isinstance(gold, pd.Series) else gold
    series = series[series.notna()]
    if series.index.has_duplicates:
        clash = series.groupby(level=0).nunique()
        if (clash > 1).any():
            raise QualityInputError(f"gold: item {clash.index[clash > 1][0]!r} has conflicting gold labels")
        series = series[~series.index.duplicated()]
    pos = ann.items.get_indexer(series.index)
    series = series[pos >= 0]
    pos = pos[pos >= 0]
    lookup = {c: i for i, c in enumerate(ann.categories)}
    codes = np.array([lookup.get(v, -1) for v in series.to_numpy()], dtype=np.int64)
    if (codes < 0).any():
        bad = series[codes < 0]
        raise UnknownLabelError(
            f"gold: {len(bad)} gold label(s) outside the categories {list(ann.categories)} "
            f"(first: item {bad.index[0]!r} -> {bad.iloc[0]!r})"
        )
    return pos.astype(np.int64), codes


def fit_dawid_skene(
    data: pd.DataFrame | Annotations,
    *,
    gold: Mapping | pd.Series | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
    smoothing: float = 0.0,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> DawidSkeneFit:
    """Fit Dawid-Skene (module docstring). `gold` maps item id -> true label, held fixed."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories)
    if max_iter < 0 or tol < 0 or smoothing < 0:
        raise ValueError("max_iter, tol and smoothing must be >= 0")
    k, na, ni = ann.n_categories, ann.n_annotators, ann.n_items
    g_items, g_codes = gold_codes(ann, gold)
    n_labels_raw = ann.labels_per_item().astype(np.float64)
    # Work on items reordered as [inferred | gold | unlabelled] so gold rows are one contiguous,
    # fixed block and the E-step touches only the inferred rows (slices, not masks).
    is_gold = np.zeros(ni, dtype=bool)
    is_gold[g_items] = True
    inferred = (n_labels_raw > 0) & ~is_gold
    perm = np.concatenate([np.flatnonzero(inferred), g_items, np.flatnonzero(~inferred & ~is_gold)])
    where = np.empty(ni, dtype=np.int64)
    where[perm] = np.arange(ni)
    n_free, n_informed = int(inferred.sum()), int(inferred.sum()) + g_items.size
    n_labels = n_labels_raw[perm]

    x = sp.csr_matrix(
        (np.ones(ann.n_labels), (where[ann.item], ann.annotator * k + ann.label)), shape=(ni, na * k), dtype=np.float64
    )
    xt = x.T  # a CSC view: X^T @ posteriors then reads the posteriors in order (8x faster than CSR)
    post = np.zeros((ni, k))
    counts = ann.counts()[perm[:n_free]].astype(np.float64)
    post[:n_free] = counts / n_labels[:n_free, None]
    post[n_free + np.arange(g_items.size), g_codes] = 1.0
    free, informed = post[:n_free], post[:n_informed]  # views
    priors = _priors(informed)
    confusion = _m_step(xt, post, na, k, smoothing)
    xl = _label_loglik(x, confusion)

    # Log-likelihoods are sums of logs floored at log(1e-10) = -23.03 per label and for the prior,
    # so a row cannot underflow exp() while it holds few labels: shift rows by their maximum only
    # when some item has more labels than that bound allows (it is only a numerical guard).
    shift = (n_labels.max(initial=0) + 1) * -np.log(_FLOOR) > 600
    ones = np.ones(k)
    elbo: list[float] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        # E-step on the inferred rows: softmax(log prior + label log-likelihoods)
        logits = xl[:n_free]
        logits += np.log(priors)[None, :]
        if shift:
            logits -= _row_max(logits)[:, None]
        np.exp(logits, out=free)
        norm = free @ ones
        free *= (1.0 / norm)[:, None]
        neg_entropy = float(np.vdot(free, logits) - np.log(norm).sum())  # sum p log p (gold rows: 0)
        # M-step
        priors = _priors(informed)
        confusion = _m_step(xt, post, na, k, smoothing)
        xl = _label_loglik(x, confusion)  # reused by the next E-step
        # crowd-kit's stopping quantity: the evidence lower bound with the prior term counted once
        # per label (crowd-kit joins it to every label row), per label
        bound = float(np.vdot(informed, xl[:n_informed]) + (n_labels[:n_informed] @ informed) @ np.log(priors)) - neg_entropy
        value = bound / max(ann.n_labels, 1)
        done = bool(elbo) and value - elbo[-1] < tol
        elbo.append(value)
        if done:
            converged = True
            break
    post[n_informed:] = priors  # items without any label or gold keep the prior (no label in .labels())
    post = post[where]  # back to item order
    return DawidSkeneFit(ann, post, priors, confusion, it, converged, elbo, g_items)


def _priors(informed: np.ndarray) -> np.ndarray:
    p = np.ones(informed.shape[0]) @ informed / max(informed.shape[0], 1)
    return np.maximum(p, _FLOOR)


def _row_max(a: np.ndarray) -> np.ndarray:
    """Row maximum of a narrow (n x K) array, column by column (faster than a.max(axis=1))."""
    out = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        np.maximum(out, a[:, j], out=out)
    return out


def _m_step(xt: sp.spmatrix, post: np.ndarray, na: int, k: int, smoothing: float) -> np.ndarray:
    """confusion[a, t, g] from expected counts of (annotator a gave g, truth t)."""
    expected = np.asarray(xt @ post).reshape(na, k, k)  # [a, given, true]
    expected = expected.transpose(0, 2, 1) + smoothing  # [a, true, given]
    expected = np.maximum(expected, _FLOOR)
    return expected / expected.sum(axis=2, keepdims=True)


def _label_loglik(x: sp.csr_matrix, confusion: np.ndarray) -> np.ndarray:
    """Sum over each item's labels of log P(label | true = t), (items x K)."""
    na, k, _ = confusion.shape
    log_conf = np.log(confusion).transpose(0, 2, 1).reshape(na * k, k)  # row a*k+given, column true
    return np.asarray(x @ log_conf)


def dawid_skene(
    data: pd.DataFrame | Annotations,
    *,
    gold: Mapping | pd.Series | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
    smoothing: float = 0.0,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> pd.DataFrame:
    """Final labels by Dawid-Skene: <item>, label, confidence (posterior), n_labels. Use
    `fit_dawid_skene` to keep the confusion matrices and accuracies as well."""
    return fit_dawid_skene(
        data, gold=gold, tol=tol, max_iter=max_iter, smoothing=smoothing,
        item=item, annotator=annotator, label=label, categories=categories,
    ).labels()


