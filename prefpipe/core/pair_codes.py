"""Pair ids as integers: a batch's million string ids are hashed once, by Arrow, and every
membership test, join and uniqueness check after that is numpy on integer codes. pandas' isin,
map and Index lookups on text hash the strings again each time (or turn them into Python objects
first), which is most of what routing and final_labels used to spend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import labels as lab

_TEXT = (pa.string(), pa.large_string())


def _arrow_of(values: pd.Series) -> pa.Array | None:
    """The Arrow text behind an Arrow-backed column (no copy), or None for any other column."""
    dtype = values.dtype
    arrow_backed = (isinstance(dtype, pd.StringDtype) and dtype.storage != "python") or isinstance(dtype, pd.ArrowDtype)
    if not arrow_backed:
        return None
    data = values.array.__arrow_array__()
    if data.type not in _TEXT:
        return None
    data = data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data
    return data.cast(pa.large_string())


def id_array(values: pd.Series) -> pa.Array:
    """Pair ids as one large_string array, each as `str()` of it (what `.astype(str)` gives): Arrow
    text is handed over as it is, anything else (or ids with a null) is converted once."""
    data = _arrow_of(values)
    if data is not None and data.null_count == 0:
        return data
    return pa.array(values.astype(str).to_numpy(dtype=object), pa.large_string())


def text_array(values: pd.Series) -> pa.Array:
    """A text column as one large_string array: str() of each present value, null where missing
    (None, NaN, pd.NA). Arrow text is handed over as it is."""
    data = _arrow_of(values)
    if data is not None:
        return data
    present = values.notna().to_numpy(dtype=bool)
    return pa.array(values.astype("object").astype(str).to_numpy(dtype=object), pa.large_string(), mask=~present)


def text_series(array: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """Arrow text as a pandas "string" column with no Python str per value."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return pd.Series(pd.arrays.ArrowStringArray(array.cast(pa.large_string())), index=index)


def constant(value: str, n: int) -> pa.Array:
    """`value` n times, as Arrow text (one value taken n times: no Python str per row)."""
    return pa.array([value], pa.large_string()).take(np.zeros(n, dtype=np.int64))


def encode(*arrays: pa.Array) -> list[np.ndarray]:
    """Every array's values as int64 codes in one numbering shared by all of them (one hash pass
    over all the text). Codes follow first appearance across the arrays in order, so the first
    array's codes are its row numbers exactly when its values are unique; null is -1."""
    if not arrays:
        return []
    chunked = pa.chunked_array([a.cast(pa.large_string()) for a in arrays], type=pa.large_string())
    encoded = pc.dictionary_encode(chunked)
    codes = [pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64) for chunk in encoded.chunks]
    if len(codes) == len(arrays) and all(len(c) == len(a) for c, a in zip(codes, arrays, strict=True)):
        return codes
    flat = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)  # Arrow may leave out empty chunks
    return [flat[start:end] for start, end in _bounds(arrays)]


def _bounds(arrays: tuple[pa.Array, ...]) -> list[tuple[int, int]]:
    ends = np.cumsum([len(a) for a in arrays])
    return list(zip([0, *ends[:-1]], ends, strict=True))


def distinct(ids: pa.Array) -> bool:
    """No value appears twice, by sorting (Arrow sorts a million ids faster than it hashes them)."""
    if len(ids) < 2:
        return True
    ordered = ids.take(pc.sort_indices(ids))
    return not pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py()


def all_distinct(codes: np.ndarray) -> bool:
    """No code appears twice (a null, -1, counts as a value, as pandas' duplicated counts it)."""
    if len(codes) < 2:
        return True
    return int(np.bincount(codes + 1).max()) <= 1


def unique_prefix(codes: np.ndarray) -> bool:
    """The first array `encode` was given has distinct values (its codes are then 0..n-1)."""
    return len(codes) == 0 or (int(codes.min()) >= 0 and int(codes.max()) == len(codes) - 1)


def positions(base: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """For each code, the row of `base` (codes from the same `encode`) where it first stands, -1
    where it does not (a null never matches)."""
    size = int(max(base.max(initial=-1), codes.max(initial=-1))) + 1
    first = np.full(size + 1, -1, dtype=np.int64)  # the last slot answers null (-1)
    if all_distinct(base):
        first[base] = np.arange(len(base), dtype=np.int64)
    else:
        values, rows = np.unique(base, return_index=True)
        first[values] = rows
    first[-1] = -1
    return first[codes]


def check_labels(labels: pd.Series, *, field: str) -> None:
    """Raise prefpipe.core.labels.LabelError as `to_codes` does when a present label is off the
    five-point scale; the check itself runs in Arrow, without a Python object per label."""
    data = _arrow_of(labels)
    if data is not None and pc.all(pc.or_kleene(pc.is_null(data), pc.is_in(data, value_set=pa.array(lab.SCALE, pa.large_string())))).as_py():
        return
    lab.to_codes(labels, field=field)


def label_codes(labels: pa.Array) -> np.ndarray:
    """Ordinal codes 0..4 of on-scale labels, -1 for a missing one."""
    found = pc.index_in(labels, value_set=pa.array(lab.SCALE, pa.large_string()))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
