"""Identical, near-identical and empty responses are found for all pairs at once, exactly as the
per-text HashingVectorizer found them (the reference below is dedup.py as it was before it cut the
texts into words in Arrow)."""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prefpipe.generation import dedup
from prefpipe.generation.dedup import _jaccard, drop_reasons, similarity
from prefpipe.generation.textarrow import lowered, words

# -- the reference ------------------------------------------------------------------------------
_SPACE = re.compile(r"\s+")


def reference_normalize(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def reference_jaccard(a: list[str], b: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import HashingVectorizer

    if len(a) == 0:
        return np.zeros(0)
    vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(5, 5), n_features=2**22, binary=True, norm=None, alternate_sign=False, lowercase=False)
    xa = vectorizer.transform(a)
    xb = vectorizer.transform(b)
    inter = np.asarray(xa.multiply(xb).sum(axis=1)).ravel()
    union = np.asarray(xa.sum(axis=1)).ravel() + np.asarray(xb.sum(axis=1)).ravel() - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def reference_drop_reasons(a: list[str], b: list[str], threshold: float) -> np.ndarray:
    na = np.array([reference_normalize(t) for t in a], dtype=object)
    nb = np.array([reference_normalize(t) for t in b], dtype=object)
    sim = reference_jaccard(list(na), list(nb))
    reasons = np.full(len(na), None, dtype=object)
    near = sim >= threshold
    reasons[near] = [f"near-identical responses (character 5-gram Jaccard {s:.3f} >= {threshold:g})" for s in sim[near]]
    reasons[na == nb] = "identical responses"
    empty = (na == "") | (nb == "")
    reasons[empty] = "empty response"
    return reasons


# -- the inputs ---------------------------------------------------------------------------------
TRICKY = [
    "", " ", "\t\n", "\u00a0", "\u2003\u3000", "\x1c\x1d\x1e\x1f", "\x85\u2028\u2029", "a", "ab", "abc", "abcd", "abcde", "a b c",
    "İ", "İstanbul", "istanbul", "ISTANBUL", "i̇stanbul", "ẞ", "Straße", "STRASSE", "strasse", "Σ", "ΟΔΟΣ", "οδος", "οδοσ", "ΣΑΣ ΣΑΣ.",
    "x\u00a0y", "x y", "X  Y", "x\u2028y", "x\x85y", "x\x1cy", "hello\u3000world", "HELLO world", "hello\u2003world", "😀", "😀😀 smile",
    "😀😀 Smile", "a" * 300, "a" * 301, "word " * 40, "Word  " * 40, "\u0130\u0307", "Kelvin \u212a", "kelvin k", "ǅ ǆ Ǆ", "ﬃ ﬀ ffi",
    "\u1e9e\u00df", "\ua7cb\ua7cc \ua7cd", "\U00010d50\U00010d70", "tab\tand\nnew\rline\x0bvt\x0cff", "tab and new line vt ff", " lead",
    "trail ", "  both  ", "both", "\x00nul\x00", "nul", "The answer is 42.", "the  answer is 42.", "déjà vu", "DÉJÀ VU", "Ⱥ ⱥ",
    "a" + "\u0301" * 7, "中文字符测试 中文", "Ünïcödé ÜNÏCÖDÉ", "x" * 5000 + " y",
]


def pairs_of(texts: list[str]) -> tuple[list[str], list[str]]:
    return [x for x in texts for _ in texts], [y for _ in texts for y in texts]


def random_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Texts of words drawn from a small mixed-case, mixed-script vocabulary, joined by assorted
    whitespace; every third pair is a text and a copy with a word changed (near-identical)."""
    rng = random.Random(seed)
    vocabulary = ["the", "The", "THE", "answer", "Answer", "ab", "a", "x", "İ", "ı", "Σ", "σς", "ΟΔΟΣ", "straße", "STRASSE", "déjà", "😀", "中文", "k",
                  "\u212a", "i̇", "word", "words", "wordy", "42", "42.", "ǅ"]
    spaces = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\x1c", "\u2003"]

    def text() -> str:
        out = []
        for _ in range(rng.randint(0, 25)):
            out += [rng.choice(vocabulary), rng.choice(spaces)]
        return rng.choice(["", " "]) + "".join(out)

    a, b = [], []
    for i in range(n):
        first = text()
        if i % 3 == 0 and first.split():
            cut = first.split()
            cut[rng.randrange(len(cut))] = rng.choice(vocabulary)
            second = rng.choice(spaces).join(cut)
        else:
            second = text()
        a.append(first)
        b.append(second)
    return a, b


# -- the tests ----------------------------------------------------------------------------------
def test_reasons() -> None:
    paris = "Paris is the capital of France. It sits on the Seine, has about two million inhabitants in the city proper, and is known for its museums."
    a = ["The answer is 42.", paris, "Short", "", "Use a for loop over the list."]
    b = ["the  answer is 42.", paris.replace("two million", "2.1 million"), "Completely different text", "x", "Sort it with sorted() instead."]
    reasons = drop_reasons(a, b, threshold=0.9)
    assert reasons[0] == "identical responses"
    assert reasons[1].startswith("near-identical responses (character 5-gram Jaccard")
    assert reasons[2] is None and reasons[3] == "empty response" and reasons[4] is None


def test_similarity_is_symmetric_and_bounded() -> None:
    a, b = ["abc def ghi jkl", "one two"], ["abc def ghi jkm", "three four"]
    forward, backward = similarity(a, b), similarity(b, a)
    assert (forward == backward).all() and ((forward >= 0) & (forward <= 1)).all()
    assert forward[0] > forward[1]


def test_tricky_texts_match_the_per_text_vectorizer() -> None:
    a, b = pairs_of(TRICKY)
    np.testing.assert_array_equal(_jaccard(a, b), reference_jaccard(a, b))
    np.testing.assert_array_equal(similarity(a, b), reference_jaccard([reference_normalize(t) for t in a], [reference_normalize(t) for t in b]))
    for threshold in (0.3, 0.9, 1.0):
        assert list(drop_reasons(a, b, threshold)) == list(reference_drop_reasons(a, b, threshold))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_texts_match_in_small_chunks(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    a, b = random_texts(1500, seed)
    monkeypatch.setattr(dedup, "CHUNK_PAIRS", 97)
    monkeypatch.setattr(dedup, "CHUNK_BYTES", 3000)
    np.testing.assert_array_equal(_jaccard(a, b), reference_jaccard(a, b))
    reasons = drop_reasons(a, b, 0.5)
    assert list(reasons) == list(reference_drop_reasons(a, b, 0.5))
    assert {r.split(" (")[0] for r in reasons if r} >= {"identical responses", "near-identical responses", "empty response"}


def test_every_character_is_lowered_and_split_as_python_does() -> None:
    """Each code point inside and after a word: Arrow's lower-casing (or Python's, for the few
    characters where the two differ) and the cut at whitespace give Python's normalized text."""
    codes = np.arange(0x110000)
    codes = codes[(codes < 0xD800) | (codes > 0xDFFF)]
    chars = np.char.mod("%c", codes).tolist()
    texts = pa.array(chars, pa.large_string())
    part = lambda text: pa.scalar(text, pa.large_string())
    texts = pc.binary_join_element_wise(part("Ab"), texts, part("Cd E"), texts, part(""))
    cut = words(lowered(texts, reference_normalize))
    tokens = cut.dictionary.take(pa.array(cut.codes))
    kept = pc.not_equal(tokens, " ").to_numpy(zero_copy_only=False)
    per_text = np.add.reduceat(np.append(kept, False), cut.indptr[:-1]) if len(kept) else np.zeros(len(texts), int)
    per_text[np.diff(cut.indptr) == 0] = 0
    offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), tokens.filter(pa.array(kept))), "")
    joined = pc.utf8_rtrim(joined, " ")  # each word has its space: " ".join(words)
    expected = pa.array([reference_normalize(t) for t in texts.to_pylist()], pa.large_string())
    wrong = np.flatnonzero(~pc.equal(joined, expected).to_numpy(zero_copy_only=False))
    assert [(hex(codes[i]), joined[i].as_py(), expected[i].as_py()) for i in wrong[:10]] == []


def test_edge_inputs() -> None:
    assert len(similarity([], [])) == 0 and len(drop_reasons([], [], 0.9)) == 0
    assert list(drop_reasons(["", " "], ["\t", ""], 0.9)) == ["empty response"] * 2  # no word at all in the chunk
    a, b = ["déjà vu", "Ünïcödé x"], ["DÉJÀ VU", "ünïcödé y"]  # non-ASCII, all of it lowered by Arrow
    assert list(drop_reasons(a, b, 0.1)) == list(reference_drop_reasons(a, b, 0.1))
    with pytest.raises(TypeError):
        similarity(["a"], [None])
