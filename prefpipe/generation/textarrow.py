"""Arrow text cut into words exactly as Python's `str.lower()` and `str.split()` would, without a
Python string per text.

Arrow's utf8_lower maps one code point to one (utf8proc's simple mapping, of its own Unicode
version); Python's lower() has full mappings ('İ' -> 'i̇'), a final sigma, and the Unicode version
of the interpreter. `unsafe_characters()` compares the two on every code point at run time; a text
holding one of those characters, or a non-ASCII whitespace character, is normalized by Python
instead (few texts are). ASCII whitespace, Python's included (\\x1c-\\x1f), becomes a space byte
by byte (UTF-8 never uses a byte below 0x80 inside a longer character), and the words are what
lies between spaces.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ASCII_SPACE = np.arange(256, dtype=np.uint8)
_ASCII_SPACE[[c for c in range(128) if chr(c).isspace()]] = ord(" ")
"""Byte map: every ASCII character str.isspace() accepts becomes a space."""


def plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous large_string array (a chunk's slice of a column)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array.cast(pa.large_string()) if array.type != pa.large_string() else array


def text_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a (large_)string array and its offsets (int64, from 0) into them."""
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=width)[array.offset : array.offset + len(array) + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def distinct(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2.4's np.unique hashes, which was 100x slower on these arrays)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


def ragged(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ranges [starts[i], starts[i] + lengths[i]): an index for gathering segments."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    keep = lengths > 0
    starts, lengths = np.asarray(starts, dtype=np.int64)[keep], lengths[keep]
    steps = np.ones(total, dtype=np.int64)
    heads = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    steps[0] = starts[0]
    steps[heads[1:]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    return np.cumsum(steps)


@functools.cache
def _code_points() -> tuple[np.ndarray, str, np.ndarray]:
    """Every non-ASCII code point but the surrogates, as an array and as one string, and the whitespace among them."""
    cps = np.arange(0x80, 0x110000, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    text = cps.astype("<u4").tobytes().decode("utf-32-le")
    return cps, text, np.array([ord(c) for c in re.findall(r"\s", text)], dtype=np.uint32)


@functools.cache
def unsafe_characters() -> str:
    """An RE2 class of the characters after which Arrow's lower-casing and word split may differ from
    Python's: the lower-case mappings that differ or need context (Σ), and non-ASCII whitespace."""
    cps, text, spaces = _code_points()
    py = list(map(str.lower, text))
    py_length = np.fromiter(map(len, py), dtype=np.int64, count=len(py))
    py_joined = np.frombuffer("".join(py).encode("utf-32-le"), dtype=np.uint32)
    py_first = py_joined[np.cumsum(py_length) - py_length]
    arrow = np.frombuffer(pc.utf8_lower(pa.array([text]))[0].as_py().encode("utf-32-le"), dtype=np.uint32)
    if len(arrow) != len(cps):  # not one code point for one: compare them one by one
        arrow = np.array([ord(s[0]) if len(s) == 1 else 0 for s in pc.utf8_lower(pa.array(list(text))).to_pylist()], dtype=np.uint32)
    unsafe = (
        (py_length != 1) | (py_first != arrow) | (cps == 0x3A3)
        | np.isin(cps, spaces) | np.isin(py_first, spaces) | np.isin(arrow, spaces)
    )
    return _char_class(cps[unsafe])


@functools.cache
def non_ascii_spaces() -> str:
    """An RE2 class of the whitespace characters (str.isspace) beyond ASCII."""
    return _char_class(_code_points()[2])


def _char_class(cps: np.ndarray) -> str:
    if len(cps) == 0:
        return "[^\\x{0}-\\x{10FFFF}]"  # matches nothing
    breaks = np.flatnonzero(np.diff(cps.astype(np.int64)) != 1)
    lows = np.concatenate([[cps[0]], cps[breaks + 1]])
    highs = np.concatenate([cps[breaks], [cps[-1]]])
    return "[" + "".join(f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" if hi > lo else f"\\x{{{lo:x}}}" for lo, hi in zip(lows, highs)) + "]"


def lowered(texts: pa.Array, normalize: Callable[[str], str]) -> pa.Array:
    """utf8_lower of every text, or `normalize` (Python's) for a text Arrow cannot lower exactly."""
    ascii_ = pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)
    if ascii_.all():
        return pc.ascii_lower(texts)
    return _by_python(texts, pc.utf8_lower(texts), ascii_, unsafe_characters(), normalize)


def spaced(texts: pa.Array) -> pa.Array:
    """The texts as they are, but those with non-ASCII whitespace, whose words Python joins with spaces."""
    ascii_ = pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)
    return texts if ascii_.all() else _by_python(texts, texts, ascii_, non_ascii_spaces(), lambda t: " ".join(t.split()))


def _by_python(texts: pa.Array, done: pa.Array, ascii_: np.ndarray, pattern: str, python: Callable[[str], str]) -> pa.Array:
    """`done`, where the non-ASCII texts matching `pattern` are replaced by `python` of them."""
    rows = np.flatnonzero(~ascii_)
    rows = rows[pc.match_substring_regex(texts.take(pa.array(rows)), pattern).to_numpy(zero_copy_only=False)]
    if len(rows) == 0:
        return done
    mask = np.zeros(len(texts), dtype=bool)
    mask[rows] = True
    fixed = pa.array([python(t) for t in texts.take(pa.array(rows)).to_pylist()], done.type)
    return pc.replace_with_mask(done, pa.array(mask), fixed)


@dataclass(frozen=True)
class Words:
    """The words of n texts: each text's word codes, CSR-like, and the distinct words."""

    dictionary: pa.Array
    """Each distinct word with a trailing space; " " is the empty word (between two spaces)."""
    codes: np.ndarray
    indptr: np.ndarray
    empty: int
    """The code of " ", -1 if no text has it."""

    def incidence(self, lo: int, hi: int):
        """Text x word incidence (boolean CSR) of texts lo..hi-1."""
        from scipy import sparse

        first, last = int(self.indptr[lo]), int(self.indptr[hi])
        indptr = self.indptr[lo : hi + 1] - first
        return sparse.csr_matrix((np.ones(last - first, bool), self.codes[first:last], indptr), shape=(hi - lo, len(self.dictionary)))

    def _sequences(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lengths = self.indptr[docs + 1] - self.indptr[docs]
        codes = self.codes[ragged(self.indptr[docs], lengths)]
        owner = np.repeat(np.arange(len(docs)), lengths)
        keep = codes != self.empty
        return codes[keep], owner[keep]

    def same_words(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether texts a[i] and b[i] have the same words in the same order (equal normalized texts)."""
        code_a, owner_a = self._sequences(a)
        code_b, owner_b = self._sequences(b)
        same_length = np.bincount(owner_a, minlength=len(a)) == np.bincount(owner_b, minlength=len(b))
        in_a, in_b = same_length[owner_a], same_length[owner_b]
        differ = code_a[in_a] != code_b[in_b]  # aligned: both sides of a kept pair have as many words
        return same_length & (np.bincount(owner_a[in_a][differ], minlength=len(a)) == 0)


def words(texts: pa.Array) -> Words:
    """The words of texts whose only whitespace is ASCII (`lowered` or `spaced` ones): each text plus
    a space, ASCII whitespace as spaces, cut after every space; one Arrow string per word
    occurrence, all sharing a single buffer."""
    joined = pc.binary_join_element_wise(texts, pa.scalar(" ", texts.type), pa.scalar("", texts.type))
    data, offsets = text_buffers(joined)
    if (data < ord(" ")).any():  # a tab, a newline...: as spaces (a copy)
        data = _ASCII_SPACE[data]
    spaces = np.flatnonzero(data == ord(" "))
    small = len(data) < 2**31 - 1
    ends = np.empty(len(spaces) + 1, dtype=np.int32 if small else np.int64)
    ends[0] = 0
    np.add(spaces, 1, out=ends[1:], casting="unsafe")
    kind = pa.StringArray if small else pa.LargeStringArray
    tokens = kind.from_buffers(len(spaces), pa.py_buffer(ends), pa.py_buffer(data))
    encoded = pc.dictionary_encode(tokens)
    dictionary = encoded.dictionary
    empty = pc.index(dictionary, " ").as_py()
    return Words(dictionary, encoded.indices.to_numpy().astype(np.int32, copy=False), np.searchsorted(spaces, offsets).astype(np.int64), empty)
