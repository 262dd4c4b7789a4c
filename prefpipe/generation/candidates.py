"""The `candidates` JSON text of the prompts table (a list of {"model", "text"}), parsed in bulk.

The prompts reader writes every list in one shape, `[{"model": "...", "text": "..."}, ...]`. A row
in exactly that shape (one RE2 pattern over the column: only string values, standard escapes, no
lone surrogate) is standard JSON that Python's json.loads and DuckDB's from_json read alike, and
DuckDB parses those rows in C++. Any other row (another layout, another type, malformed JSON, a
Python list in an object column) is read by `row_candidates`, the per-row reader, in row order:
its error names the first bad row as it always did. (Letting DuckDB parse every row and checking
that it writes each back unchanged cost more than the pattern.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_STR = (
    r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]'
    r"|\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}|[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}))*"
    r'"'
)
_ITEM = r'\{"model": ' + _STR + r', "text": ' + _STR + r"\}"
CANONICAL = r"^\[(?:" + _ITEM + r"(?:, " + _ITEM + r")*)?\]$"
"""The reader's shape of a candidates list, in which DuckDB and Python read the same strings."""
_SCHEMA = '[{"model": "VARCHAR", "text": "VARCHAR"}]'


@dataclass(frozen=True)
class Parsed:
    """Candidates of consecutive prompts: how many each has, and either all of them flattened in row
    order, or (when no prompt has more than two) the first and second as columns."""

    count: np.ndarray
    model: pa.Array | None = None
    """`item.get("model") or "unknown"`, as text (null where that value converts to a missing text)."""
    text: pa.Array | None = None
    two: tuple[pa.ChunkedArray, pa.ChunkedArray, pa.ChunkedArray, pa.ChunkedArray] | None = None
    """Text of the first, of the second, model of the first, of the second (null for a prompt with fewer than two)."""


def row_candidates(raw: Any, prompt_id: str) -> list[dict[str, Any]]:
    """One row's list, exactly as the per-row reader always read it (and its errors)."""
    items = json.loads(raw) if isinstance(raw, str) else (raw if isinstance(raw, list) else [])
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ValueError(f"prompts: prompt {prompt_id!r}: field candidates[{i}] must be an object with a text")  # noqa: TRY004 - the error it always raised
    return items


def arrow_text(series: pd.Series) -> pa.ChunkedArray:
    """The column as Arrow large_string, its values converted as `astype("string")` converts them."""
    if not (str(series.dtype) == "string" and series.dtype.storage == "pyarrow"):
        series = series.astype(pd.StringDtype("pyarrow"))
    array = series.array.__arrow_array__()
    array = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    return array.cast(pa.large_string()) if array.type != pa.large_string() else array


def parse(column: pd.Series, prompt_ids: pa.ChunkedArray) -> Parsed:
    """The candidates of every row of `column` (a slice of the prompts' column); `prompt_ids` (the
    same rows) name a bad row in the error."""
    strings, other = _strings(column)
    canonical = _canonical(strings)
    slow = np.flatnonzero(~canonical & (pc.is_valid(strings).to_numpy(zero_copy_only=False) | other))
    if len(slow):  # DuckDB reads the rows in the reader's shape only
        strings = pc.if_else(pa.chunked_array([canonical]), strings, pa.scalar(None, strings.type))
    if len(slow) == 0:
        two = _duckdb(strings, _TWO)
        count = two.column("k").to_numpy().astype(np.int64)
        if count.max(initial=0) <= 2:
            return Parsed(count, two=tuple(two.column(c) for c in ("ta", "tb", "ma", "mb")))
    flat = _duckdb(strings, _FLAT)
    fast = Parsed(
        flat.column("k").to_numpy().astype(np.int64),
        pc.list_flatten(flat.column("model").combine_chunks()),
        pc.list_flatten(flat.column("text").combine_chunks()),
    )
    return _with_slow_rows(fast, slow, column, prompt_ids) if len(slow) else fast


def _canonical(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(strings, CANONICAL), False).to_numpy(zero_copy_only=False)


def _with_slow_rows(fast: Parsed, slow: np.ndarray, column: pd.Series, prompt_ids: pa.ChunkedArray) -> Parsed:
    """`fast` (where the slow rows have no candidates) with the slow rows read by the per-row reader."""
    values = column.to_numpy(dtype=object, na_value=None)
    items = [row_candidates(values[r], str(prompt_ids[int(r)].as_py())) for r in slow]
    count_slow = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    models = pd.array([item.get("model") or "unknown" for row in items for item in row], dtype=pd.StringDtype("pyarrow"))
    texts = [item["text"] for row in items for item in row]
    count = fast.count.copy()
    count[slow] = count_slow
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    fast_rows = np.repeat(np.arange(len(count)), fast.count)
    slow_rows = np.repeat(slow, count_slow)
    where = np.concatenate([start[fast_rows] + _within(fast.count), start[slow_rows] + _within(count_slow)])
    order = np.empty(len(where), dtype=np.int64)
    order[where] = np.arange(len(where))
    model = pa.concat_arrays([fast.model, models.__arrow_array__().combine_chunks().cast(pa.large_string())]).take(order)
    text = pa.concat_arrays([fast.text, pa.array(texts, pa.large_string())]).take(order)
    return Parsed(count, model, text)


_MODEL = "coalesce(nullif({}.model, ''), 'unknown')"  # `item.get("model") or "unknown"` of a string
_TWO = f"""
SELECT coalesce(len(j), 0) AS k,
    CASE WHEN len(j) >= 2 THEN j[1].text END AS ta, CASE WHEN len(j) >= 2 THEN j[2].text END AS tb,
    CASE WHEN len(j) >= 2 THEN {_MODEL.format('j[1]')} END AS ma, CASE WHEN len(j) >= 2 THEN {_MODEL.format('j[2]')} END AS mb
FROM (SELECT from_json(c, '{_SCHEMA}') AS j FROM candidate_rows)
"""
_FLAT = f"""
SELECT coalesce(len(j), 0) AS k, list_transform(j, x -> {_MODEL.format('x')}) AS model, list_transform(j, x -> x.text) AS text
FROM (SELECT from_json(c, '{_SCHEMA}') AS j FROM candidate_rows)
"""


def _within(count: np.ndarray) -> np.ndarray:
    """0, 1, ..., count[i] - 1 for each i, concatenated."""
    return np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)


def _strings(column: pd.Series) -> tuple[pa.ChunkedArray, np.ndarray]:
    """The column's strings (null elsewhere), and where a value is neither a string nor missing."""
    other = np.zeros(len(column), dtype=bool)
    if str(column.dtype) != "string":
        values = column.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            is_str = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))  # mixed: unusual input
            other = ~is_str & ~pd.isna(column).to_numpy()
            values = np.where(is_str, values, None)
        column = pd.Series(pd.array(values, dtype=pd.StringDtype("pyarrow")), index=column.index)
    return arrow_text(column), other


def _duckdb(strings: pa.ChunkedArray, query: str) -> pa.Table:
    """`query` over the relation candidate_rows (column c: the canonical rows, null elsewhere), in
    row order. One thread: on a shared machine two were several times slower, not faster."""
    import duckdb

    with duckdb.connect(config={"threads": 1, "preserve_insertion_order": True, "arrow_large_buffer_size": True}) as con:
        con.register("candidate_rows", pa.table({"c": strings}))
        result = con.sql(query)
        return result.to_arrow_table() if hasattr(result, "to_arrow_table") else result.arrow()
