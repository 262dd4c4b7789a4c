"""Which pairs are not worth a label: identical, near-identical or empty responses.

Near-identical is measured as the Jaccard similarity of the two responses' character 5-gram sets
(after lower-casing and collapsing whitespace), computed for all pairs at once with scikit-learn's
HashingVectorizer and sparse products: no Python loop per pair, no vocabulary to hold in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_SPACE = re.compile(r"\s+")
NGRAM = 5


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def similarity(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Character 5-gram Jaccard similarity of a[i] and b[i], in [0, 1]."""
    return _jaccard([normalize(t) for t in a], [normalize(t) for t in b])


def _jaccard(a: list[str], b: list[str]) -> np.ndarray:
    """`similarity` of texts already normalized."""
    from sklearn.feature_extraction.text import HashingVectorizer

    if len(a) == 0:
        return np.zeros(0)
    vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(NGRAM, NGRAM), n_features=2**22, binary=True, norm=None, alternate_sign=False, lowercase=False)
    xa = vectorizer.transform(a)
    xb = vectorizer.transform(b)
    inter = np.asarray(xa.multiply(xb).sum(axis=1)).ravel()
    union = np.asarray(xa.sum(axis=1)).ravel() + np.asarray(xb.sum(axis=1)).ravel() - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def drop_reasons(a: Sequence[str], b: Sequence[str], threshold: float) -> np.ndarray:
    """Per pair: why it should be dropped, or None to keep it."""
    na = np.array([normalize(t) for t in a], dtype=object)
    nb = np.array([normalize(t) for t in b], dtype=object)
    sim = _jaccard(list(na), list(nb))
    reasons = np.full(len(na), None, dtype=object)
    near = sim >= threshold
    reasons[near] = [f"near-identical responses (character {NGRAM}-gram Jaccard {s:.3f} >= {threshold:g})" for s in sim[near]]
    reasons[na == nb] = "identical responses"
    empty = (na == "") | (nb == "")
    reasons[empty] = "empty response"
    return reasons
