"""Reading a batch's prompts.jsonl into the `prompts` table, in bulk with a line-by-line fallback.

Each line: `prompt` (non-empty text), optional `id` (a string or integer, unique; without one, a
hash of the prompt) and optional `responses`, a list of `{"model", "text"}`. A million prompts
are read by DuckDB and checked in SQL (prefpipe.core.jsonl); any problem sends the file through
the line-by-line reader, whose error names the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from prefpipe.core import schemas
from prefpipe.core.input_errors import BatchInputError
from prefpipe.core.jsonl import (
    UPPER_ESCAPES, LineByLine, arrow_frame, arrow_strings, bulk_or_line_by_line, read_bulk, read_jsonl, sql_blank, sql_id, sql_text,
)

CANDIDATE_START = '{"model": '
"""How each candidate starts in the `candidates` JSON text: no response's text can hold it
unescaped, so counting it counts the candidates without parsing the JSON."""


def prompt_id_for(text: str) -> str:
    """A stable id for a prompt given without one: the same text always gets the same id."""
    return "p-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def load_prompts(path: Path) -> pd.DataFrame:
    """Read and validate a prompts.jsonl into the `prompts` table's columns."""
    return read_prompts(path)[0]


def read_prompts(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """load_prompts, and how many candidate responses each prompt has (counted by the reader: searching
    the candidates' JSON for them again takes seconds at a million prompts)."""
    path = Path(path)
    if not path.is_file():
        raise BatchInputError(path, "file not found")
    return bulk_or_line_by_line(lambda: _in_bulk(path), lambda: _line_by_line(path))


_COLUMNS = {"id": "JSON", "prompt": "JSON", "responses": 'STRUCT(model JSON, "text" JSON)[]'}
_CANDIDATE = f"""'{CANDIDATE_START}' || coalesce(CAST(r.model AS VARCHAR), '"unknown"') || ', "text": ' || CAST(r.text AS VARCHAR) || '}}'"""
_CANDIDATE_OK = """coalesce(json_type(r.text) = 'VARCHAR' AND (r.model IS NULL OR (json_type(r.model) = 'VARCHAR' AND CAST(r.model AS VARCHAR) <> '""')), false)"""
_SELECT = f"""
SELECT prompt_id, prompt, candidates, coalesce(len(responses), 0) AS candidate_count, coalesce(
    prompt IS NOT NULL AND NOT {sql_blank('prompt')}
    AND (id IS NULL OR (id_text IS NOT NULL AND NOT {sql_blank('id_text')}))
    AND (responses IS NULL OR len(responses) = 0 OR list_bool_and(list_transform(responses, lambda r: {_CANDIDATE_OK})))
    AND NOT regexp_matches(candidates, {UPPER_ESCAPES}), false) AS ok
FROM (
    SELECT *,
        CASE WHEN id IS NULL THEN 'p-' || left(sha256(prompt), 12) ELSE id_text END AS prompt_id,
        CASE WHEN responses IS NULL THEN '[]'
             ELSE '[' || array_to_string(list_transform(responses, lambda r: {_CANDIDATE}), ', ') || ']' END AS candidates
    FROM (SELECT id, responses, {sql_text('prompt')} AS prompt, {sql_id('id')} AS id_text FROM lines)
)
"""


def _in_bulk(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    bulk = read_bulk(path, _COLUMNS, _SELECT)
    table = bulk.table
    if table.num_rows == 0 or not pc.all(table["ok"]).as_py() or pc.count_distinct(table["prompt_id"]).as_py() != table.num_rows:
        raise LineByLine("a prompt the line-by-line reader must judge")
    for obj in bulk.exact.values():  # DuckDB reads a null as missing: here a null is wrong
        responses = obj.get("responses", [])
        if responses is None or (isinstance(responses, list) and any(isinstance(r, dict) and "model" in r and r["model"] is None for r in responses)):
            raise LineByLine("a null response or model")
    frame = arrow_frame(table.select(["prompt_id", "prompt", "candidates"]))
    frame["source_line"] = bulk.lines
    return schemas.conform(frame, schemas.PROMPTS, name="prompts"), table["candidate_count"].to_numpy().astype("int64")


def _line_by_line(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    rows: list[dict[str, Any]] = []
    counts: list[int] = []
    seen: dict[str, int] = {}
    for line_no, obj in read_jsonl(path):
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BatchInputError(path, "missing or empty (a non-empty string is required)", line=line_no, field="prompt")
        raw_id = obj.get("id")
        if raw_id is None:
            prompt_id = prompt_id_for(prompt)
        elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
            prompt_id = str(raw_id)
        else:
            raise BatchInputError(path, f"must be a non-empty string or integer, got {raw_id!r}", line=line_no, field="id")
        if prompt_id in seen:
            raise BatchInputError(path, f"duplicate id {prompt_id!r} (first on line {seen[prompt_id]})", line=line_no, field="id")
        seen[prompt_id] = line_no
        candidates = _candidates(path, line_no, obj.get("responses", []))
        counts.append(len(candidates))
        rows.append({"prompt_id": prompt_id, "prompt": prompt, "candidates": json.dumps(candidates, ensure_ascii=False), "source_line": line_no})
    if not rows:
        raise BatchInputError(path, "holds no prompts")
    return arrow_strings(schemas.conform(pd.DataFrame(rows), schemas.PROMPTS, name="prompts")), np.asarray(counts, dtype="int64")


def _candidates(path: Path, line_no: int, raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise BatchInputError(path, "must be a list of {\"model\", \"text\"} objects", line=line_no, field="responses")
    out = []
    for i, item in enumerate(raw):
        where = f"responses[{i}]"
        if not isinstance(item, dict):
            raise BatchInputError(path, "must be an object with model and text", line=line_no, field=where)
        text, model = item.get("text"), item.get("model", "unknown")
        if not isinstance(text, str):
            raise BatchInputError(path, "missing or not a string", line=line_no, field=f"{where}.text")
        if not isinstance(model, str) or not model:
            raise BatchInputError(path, "must be a non-empty string", line=line_no, field=f"{where}.model")
        out.append({"model": model, "text": text})
    return out
