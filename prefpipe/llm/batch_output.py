"""A Batch API output file, one chunk of lines at a time, to rows of the answer cache.

DuckDB parses each chunk (from_json into a typed struct), and the token offsets are computed with
numpy over the flattened tokens: no Python object per answer besides the row handed to SQLite. A
line that is not a plain successful chat completion (an HTTP error, no choices, null content, odd
log-probabilities, a line that is not JSON) is read in Python by `completion_fields`, the rule
every live answer goes through, so both paths agree on what is malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.llm.request import Completion, MalformedResponse, completion_fields

_STRUCT = json.dumps({
    "custom_id": "VARCHAR",
    "response": {"status_code": "INTEGER", "body": {
        "choices": [{"message": {"content": "JSON"}, "finish_reason": "VARCHAR", "logprobs": {"content": [{"token": "VARCHAR", "logprob": "DOUBLE"}]}}],
        "usage": {"prompt_tokens": "BIGINT", "completion_tokens": "BIGINT"},
    }},
})
_QUERY = f"""
WITH j AS (SELECT i, from_json(line, '{_STRUCT}') AS j FROM (SELECT row_number() OVER () - 1 AS i, line FROM lines) WHERE json_valid(line)),
c AS (SELECT i, j.custom_id AS key, j.response.status_code AS code, j.response.body AS body, j.response.body.choices[1] AS choice FROM j)
SELECT i, key, choice.message.content->>'$' AS text, choice.finish_reason AS finish_reason,
       body.usage.prompt_tokens AS prompt_tokens, body.usage.completion_tokens AS completion_tokens,
       list_transform(choice.logprobs.content, t -> t.token) AS tokens, list_transform(choice.logprobs.content, t -> t.logprob) AS logprobs
FROM c
WHERE code = 200 AND json_type(choice.message.content) = 'VARCHAR'
  AND coalesce(list_bool_and(list_transform(choice.logprobs.content, t -> t.token IS NOT NULL AND t.logprob IS NOT NULL)), true)
ORDER BY i
"""


@dataclass
class ParsedChunk:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    """cache.ANSWER_COLUMNS rows of the good answers."""
    failed: dict[str, str] = field(default_factory=dict)
    """custom_id -> why its line gave no answer."""

    @property
    def keys(self) -> list[str]:
        return [r[0] for r in self.rows]


def parse_output(lines: pa.LargeStringArray, models: dict[str, str]) -> ParsedChunk:
    """Answers and failures of the lines whose custom_id is in `models` (key -> model asked)."""
    with duckdb.connect() as con:
        con.register("lines", pa.table({"line": lines}))
        good = con.execute(_QUERY).to_arrow_table()
    keep = np.array([k in models for k in good.column("key").to_pylist()], dtype=bool)
    good = good.filter(pa.array(keep))
    ends, logprobs = _token_arrays(good)
    out = ParsedChunk()
    keys = good.column("key").to_pylist()
    out.rows = list(zip(
        keys, [models[k] for k in keys], good.column("text").to_pylist(), good.column("finish_reason").to_pylist(),
        good.column("prompt_tokens").to_pylist(), good.column("completion_tokens").to_pylist(),
        ends.to_pylist(), logprobs.to_pylist(), [1] * len(keys),
    ))
    fast = np.zeros(len(lines), dtype=bool)
    fast[good.column("i").to_numpy()] = True
    for i in np.flatnonzero(~fast).tolist():
        _slow_line(lines[i].as_py(), models, out)
    return out


def _token_arrays(good: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per row: token end offsets (uint32, only when the tokens spell the text) and log-probabilities
    (float32), as raw little-endian bytes; null where the answer has no log-probabilities."""
    tokens = good.column("tokens").combine_chunks()
    n = len(tokens)
    if n == 0:
        return pa.array([], pa.binary()), pa.array([], pa.binary())
    counts = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    flat = pc.list_flatten(tokens)
    lengths = pc.utf8_length(flat).to_numpy(zero_copy_only=False).astype(np.int64)
    running = np.cumsum(lengths)
    before = np.concatenate([[0], running])[starts[:-1]]
    ends = (running - np.repeat(before, counts)).astype("<u4")
    spelled = pc.fill_null(pc.equal(pc.binary_join(tokens, ""), good.column("text").combine_chunks()), False).to_numpy(zero_copy_only=False)
    has = counts > 0
    lp = pc.list_flatten(good.column("logprobs").combine_chunks()).to_numpy(zero_copy_only=False).astype("<f4")
    offsets = pa.py_buffer((starts * 4).astype(np.int32).tobytes())
    as_blobs = lambda data, valid: pa.Array.from_buffers(pa.binary(), n, [pa.array(valid).buffers()[1], offsets, pa.py_buffer(data.tobytes())])  # noqa: E731
    return as_blobs(ends, has & spelled), as_blobs(lp, has)


def _slow_line(raw: str, models: dict[str, str], out: ParsedChunk) -> None:
    """One line that is not a plain good answer, read the way a live answer is."""
    try:
        line = json.loads(raw)
    except ValueError:
        return  # not even its custom_id can be read: its request stays without an answer
    key = line.get("custom_id") if isinstance(line, dict) else None
    if key not in models:
        return
    response = line.get("response") or {}
    if response.get("status_code") != 200:
        detail = line.get("error") or response.get("body")
        out.failed[key] = f"Batch API line failed: HTTP {response.get('status_code')}: {json.dumps(detail)[:300]}"
        return
    try:
        answer = Completion(key=key, model=models[key], status="ok", batch=True, **completion_fields(response.get("body")))
    except MalformedResponse as exc:
        out.failed[key] = f"Batch API line malformed: {exc}"
        return
    stored = answer.stored()
    blob = lambda a, dtype: None if a is None else np.asarray(a, dtype=dtype).tobytes()  # noqa: E731
    out.rows.append((key, models[key], stored["text"], stored["finish_reason"], stored["prompt_tokens"], stored["completion_tokens"],
                     blob(answer.token_ends, "<u4"), blob(answer.token_logprobs, "<f4"), 1))


def parse_errors(lines: pa.LargeStringArray, models: dict[str, str]) -> dict[str, str]:
    """custom_id -> the error of each line of an error file (few lines: read in Python)."""
    failed: dict[str, str] = {}
    for raw in lines.to_pylist():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        key = line.get("custom_id") if isinstance(line, dict) else None
        if key in models:
            detail = line.get("error") or (line.get("response") or {}).get("body")
            failed[key] = f"Batch API line failed: {json.dumps(detail)[:300]}"
    return failed
