"""Which pairs are not worth a label: identical, near-identical or empty responses.

Near-identical is measured as the Jaccard similarity of the two responses' character 5-gram sets
(after lower-casing and collapsing whitespace), hashed as scikit-learn's HashingVectorizer hashes
them (analyzer 'char_wb', 2**22 features, binary). 'char_wb' takes its n-grams inside each word
padded with one space, so a text's set is the union of its distinct words' sets: the texts are cut
into words in Arrow, only the distinct words of a chunk are cut into n-grams and hashed (by the
vectorizer's own FeatureHasher), and a sparse text x word by word x feature product gives every
text's set. Chunks of a bounded size keep the memory flat however many pairs there are; the result
is exactly the per-text vectorizer's (prefpipe_tests/generation/test_dedup.py checks it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.generation.textarrow import (
    distinct,
    lowered,
    plain,
    ragged,
    spaced,
    text_buffers,
    words,
)

_SPACE = re.compile(r"\s+")
NGRAM = 5
N_FEATURES = 2**22
Texts = pa.Array | pa.ChunkedArray
CHUNK_PAIRS = 20_000
CHUNK_BYTES = 16 << 20
"""A chunk holds at most this many pairs and this much text (both sides): its working memory is
about 150 MB whatever the batch's size (as fast as 50,000-pair chunks, which took three times that)."""


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


@dataclass(frozen=True)
class Measures:
    """Per pair: the Jaccard similarity, whether the normalized texts are equal, whether one is empty."""

    similarity: np.ndarray
    identical: np.ndarray
    empty: np.ndarray


def similarity(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Character 5-gram Jaccard similarity of a[i] and b[i], in [0, 1]."""
    return measure(_arrow(a), _arrow(b)).similarity


def _jaccard(a: list[str], b: list[str]) -> np.ndarray:
    """`similarity` of texts already normalized: cut into words as they are, not lower-cased."""
    return measure(_arrow(a), _arrow(b), lower=False).similarity


def drop_reasons(a: Sequence[str], b: Sequence[str], threshold: float) -> np.ndarray:
    """Per pair: why it should be dropped, or None to keep it."""
    return np.array(drop_reason_array(_arrow(a), _arrow(b), threshold).to_pylist(), dtype=object)


def drop_reason_array(a: Texts, b: Texts, threshold: float, rows: np.ndarray | None = None) -> pa.Array:
    """`drop_reasons` of Arrow texts (of pairs `rows` only, if given), as Arrow text (null: keep the pair)."""
    m = measure(a, b, rows)
    near = m.similarity >= threshold
    shown, code = np.unique(m.similarity[near], return_inverse=True)  # one f-string per distinct similarity
    labels = ["identical responses", "empty response"] + [
        f"near-identical responses (character {NGRAM}-gram Jaccard {s:.3f} >= {threshold:g})" for s in shown
    ]
    codes = np.full(len(near), -1, dtype=np.int64)
    codes[near] = 2 + code.ravel()
    codes[m.identical] = 0
    codes[m.empty] = 1
    return pa.array(labels, pa.large_string()).take(pa.array(codes, mask=codes < 0))


def measure(a: Texts, b: Texts, rows: np.ndarray | None = None, *, lower: bool = True) -> Measures:
    """`Measures` of the pairs (a[i], b[i]) (of pairs `rows` only, if given), chunk by chunk, of the
    normalized texts (`lower` False: of the texts as they are, cut at whitespace)."""
    if len(a) != len(b):
        raise ValueError(f"measure: {len(a)} texts against {len(b)}")
    size = pc.fill_null(pc.add(pc.binary_length(a), pc.binary_length(b)), 0).to_numpy(zero_copy_only=False)
    if rows is not None:
        size = size[rows]
    parts = []
    for lo, hi in _chunks(size):
        if rows is None:
            part_a, part_b = a.slice(lo, hi - lo), b.slice(lo, hi - lo)
        else:
            at = pa.array(rows[lo:hi])
            part_a, part_b = a.take(at), b.take(at)
        if part_a.null_count or part_b.null_count:
            raise ValueError("measure: a text is missing")
        parts.append(_measure_chunk(plain(part_a), plain(part_b), lower))
    if not parts:
        return Measures(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    return Measures(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("similarity", "identical", "empty")))


def _arrow(texts: Sequence[str]) -> pa.Array:
    array = pa.array(list(texts), pa.large_string())
    if array.null_count:
        raise TypeError("texts must be strings, got None")
    return array


def _chunks(size: np.ndarray) -> Iterator[tuple[int, int]]:
    """[lo, hi) ranges of at most CHUNK_PAIRS pairs and about CHUNK_BYTES of text (`size`: per pair)."""
    ends = np.cumsum(np.asarray(size, dtype=np.int64))
    lo = 0
    while lo < len(ends):
        by_bytes = int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + CHUNK_BYTES, side="right"))
        hi = min(len(ends), lo + CHUNK_PAIRS, max(by_bytes, lo + 1))
        yield lo, hi
        lo = hi


def _measure_chunk(a: pa.Array, b: pa.Array, lower: bool = True) -> Measures:
    c = len(a)
    docs = pa.concat_arrays([a, b])  # text i is a[i] for i < c, b[i - c] after
    cut = words(lowered(docs, normalize) if lower else spaced(docs))
    features, weight = _features(cut.dictionary)
    side_a, side_b = cut.incidence(0, c) @ features, cut.incidence(c, 2 * c) @ features  # boolean: OR, never zero again
    size_a, size_b = _row_sums(side_a, weight), _row_sums(side_b, weight)
    inter = _row_sums(side_a.multiply(side_b).tocsr(), weight)
    union = size_a + size_b - inter
    sim = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    empty = (size_a == 0) | (size_b == 0)  # every word has at least one n-gram
    identical = np.zeros(c, dtype=bool)
    maybe = np.flatnonzero((size_a == size_b) & (inter == size_a) & ~empty)  # equal texts have equal sets
    if len(maybe):
        identical[maybe] = cut.same_words(maybe, maybe + c)
    return Measures(sim, identical, empty)


def _row_sums(matrix, weight: np.ndarray) -> np.ndarray:
    """Per row, the total weight of its columns (each column once)."""
    total = np.concatenate([[0], np.cumsum(weight[matrix.indices])])
    return total[matrix.indptr[1:]] - total[matrix.indptr[:-1]]


def _word_grams(dictionary: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """How many char_wb n-grams each distinct word has, and all of them, word after word: the word
    padded with a space each side, cut every NGRAM code points (Python slices code points), or the
    padded word itself when shorter. The empty word " " has none."""
    space, nothing = pa.scalar(" ", dictionary.type), pa.scalar("", dictionary.type)
    padded = pc.binary_join_element_wise(space, dictionary, nothing)  # the word keeps its trailing space
    length = pc.utf8_length(padded).to_numpy(zero_copy_only=False).astype(np.int64)
    count = np.where(length <= 2, 0, np.maximum(length - (NGRAM - 1), 1))
    data, _ = text_buffers(padded)
    if pc.all(pc.string_is_ascii(padded)).as_py():
        starts = np.arange(len(data) + 1, dtype=np.int64)  # code point k starts at byte k
    else:
        starts = np.append(np.flatnonzero((data & 0xC0) != 0x80), len(data))
    first = np.concatenate([[0], np.cumsum(length)[:-1]])[np.repeat(np.arange(len(count)), count)]
    lo_cp = first + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    hi_cp = np.minimum(lo_cp + NGRAM, first + np.repeat(length, count))
    lo, hi = starts[lo_cp], starts[hi_cp]
    offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
    return count, pa.LargeStringArray.from_buffers(len(lo), pa.py_buffer(offsets), pa.py_buffer(data[ragged(lo, hi - lo)]))


def _features(dictionary: pa.Array):
    """Word x column incidence (boolean CSR) of the distinct words, and each column's weight.

    The columns: one for each feature (an n-gram hashed as HashingVectorizer hashes it) that two or
    more of these words share, weight 1; then one for each word, standing for the features only it
    has, weighted by how many. A text holds a word's own features exactly when it holds the word,
    so weighted column counts are the exact set sizes, and the product has far fewer entries."""
    from scipy import sparse
    from sklearn.feature_extraction import FeatureHasher

    count, grams = _word_grams(dictionary)
    if len(grams) == 0:
        return sparse.csr_matrix((len(count), 1), dtype=bool), np.zeros(1, dtype=np.int64)
    encoded = pc.dictionary_encode(grams)
    hasher = FeatureHasher(n_features=N_FEATURES, input_type="string", alternate_sign=False)  # HashingVectorizer's own
    hashed = hasher.transform(zip(encoded.dictionary.to_pylist()))  # one distinct n-gram a row, one feature each
    feature, _ = pd.factorize(hashed.indices)  # colliding n-grams share a feature, as in the vectorizer
    n_features = int(feature.max()) + 1
    word = np.repeat(np.arange(len(count)), count)
    pairs = distinct(word * n_features + feature[encoded.indices.to_numpy()])  # distinct (word, feature)
    owner, feature = pairs // n_features, pairs % n_features
    shared = np.bincount(feature, minlength=n_features)[feature] > 1
    shared_columns, column = np.unique(feature[shared], return_inverse=True)
    own = np.bincount(owner[~shared], minlength=len(count))
    has_own = np.flatnonzero(own)
    rows = np.concatenate([owner[shared], has_own])
    columns = np.concatenate([column.ravel(), len(shared_columns) + np.arange(len(has_own))])
    weight = np.concatenate([np.ones(len(shared_columns), dtype=np.int64), own[has_own]])
    return sparse.csr_matrix((np.ones(len(rows), bool), (rows, columns)), shape=(len(count), len(weight))), weight
