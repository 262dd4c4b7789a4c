"""Raw pairwise agreement: the share of label pairs on the same item that agree.

It is what people mean by "the annotators agreed 85% of the time", but it is not chance-corrected
(read kappa or alpha for that). Definition: for each item with m >= 2 labels, the share of its
m (m - 1) ordered label pairs that are equal, sum_c n_c (n_c - 1) / (m (m - 1)); the batch figure
is the mean over those items (each item counts once, whatever its number of labels; it is Fleiss'
observed agreement P-bar). Items with fewer than two labels are left out; with none left the figure
is undefined (AgreementUndefinedError).

Directional agreement (five-point scale only) first merges A>>B with A>B and B>A with B>>A, so two
people who both prefer A agree even if one prefers it strongly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prefpipe.core.labels import DIRECTION, SCALE
from prefpipe.quality._frames import Annotations, as_annotations
from prefpipe.quality.bootstrap import Estimate, pattern_estimate
from prefpipe.quality.errors import QualityInputError
from prefpipe.quality.krippendorff import pairable_counts

DIRECTIONS: tuple[str, ...] = ("A", "=", "B")


def directional_counts(counts: np.ndarray, categories: Sequence) -> np.ndarray:
    """Merge five-point counts (items x 5) into direction counts (items x 3: A, =, B)."""
    if tuple(categories) != SCALE:
        raise QualityInputError(
            f"directional agreement needs labels on the five-point scale {', '.join(SCALE)}; "
            f"the categories here are {list(categories)}"
        )
    merge = np.zeros((len(SCALE), len(DIRECTIONS)), dtype=np.int64)
    for code, lab in enumerate(SCALE):
        merge[code, DIRECTIONS.index(DIRECTION[lab])] = 1
    return counts @ merge


def agreement_from_patterns(patterns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean per-item pairwise agreement for each row of pattern multiplicities."""
    p = patterns.astype(np.float64)
    m = p.sum(axis=1)
    per_item = (p * (p - 1)).sum(axis=1) / (m * (m - 1))
    return weights @ per_item / weights.sum(axis=1)


def pairwise_agreement(
    data: pd.DataFrame | Annotations,
    *,
    directional: bool = False,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
) -> float:
    """Raw pairwise agreement in [0, 1] (module docstring); `directional` merges strengths."""
    return pairwise_agreement_estimate(
        data, directional=directional, item=item, annotator=annotator, label=label, categories=categories, n_boot=0
    ).value


def pairwise_agreement_estimate(
    data: pd.DataFrame | Annotations,
    *,
    directional: bool = False,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
    categories: Sequence | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> Estimate:
    """Raw agreement with a percentile interval from `n_boot` item resamples (seeded)."""
    ann = as_annotations(data, item=item, annotator=annotator, label=label, categories=categories, for_agreement=True)
    counts = pairable_counts(ann)
    if directional:
        counts = directional_counts(counts, ann.categories)
    return pattern_estimate(counts, agreement_from_patterns, n_boot=n_boot, ci=ci, seed=seed)
