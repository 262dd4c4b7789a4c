"""Import labels made elsewhere: an external judge's verdicts and human annotations.

Teams often have labels already (a previous vendor, another tool, a published set). They enter the
pipeline from the batch folder and are treated like prefpipe's own: the same scale, the same
checks, the same reports. Raw values that are not written on the five-point scale are mapped by the
batch's `label_map` (batch.json).

- An external verdict that cannot be mapped is kept as `unparsed` with its raw text and no label:
  a verdict we cannot read is not a tie.
- A human label that cannot be mapped is bad input: the batch fails naming the file, line and field,
  because silently dropping a person's work would bias every figure downstream; so is a duration
  that is not seconds on one task (not finite, negative, a day or more).

Each file is read in bulk and checked in SQL (prefpipe.core.jsonl); on any doubt the line-by-line
reader below, the exact one, reads it again and names the file, line and field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import schemas
from prefpipe.core.batch_config import BatchConfig
from prefpipe.core.import_cache import as_arrow, pairs_are_known, parsed_once
from prefpipe.core.input_errors import BatchInputError
from prefpipe.core.jsonl import (
    UPPER_ESCAPES, LineByLine, arrow_frame, bulk_or_line_by_line, arrow_series, arrow_strings, read_bulk, read_jsonl, sql_blank, sql_id, sql_number, sql_or_default,
    sql_strip,
)
from prefpipe.core.labels import SCALE

AI_LABELS_FILE = "ai_labels.jsonl"
ANNOTATIONS_FILE = "annotations.jsonl"
ANNOTATIONS_DIR = "annotations"
EXTERNAL_PROMPT_VERSION = "external"
MAX_DURATION_S = 86_400.0
"""A label's time on task is under one day: more is a clock or unit error, not a duration."""


def map_label(raw: Any, label_map: dict[str, str]) -> str | None:
    """The five-point label for a raw value, or None when it cannot be mapped."""
    if raw is None:
        return None
    text = str(raw).strip()
    if text in SCALE:
        return text
    return label_map.get(text)


def _require_str(path: Path, line: int, obj: dict, name: str) -> str:
    value = obj.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BatchInputError(path, "missing or empty", line=line, field=name)
    return value


def _check_known(path: Path, line: int, pair_id: str, known: Collection[str] | None, unpaired: Mapping[str, str] | None) -> None:
    if unpaired and pair_id in unpaired:
        raise BatchInputError(path, f"pair {pair_id!r} is never made: {unpaired[pair_id]}", line=line, field="pair_id")
    if known is not None and pair_id not in known:
        raise BatchInputError(path, f"pair {pair_id!r} is not in this batch's response pairs", line=line, field="pair_id")


def import_ai_labels(
    path: Path, config: BatchConfig, *, guideline_version: str, known_pairs: Collection[str] | None = None,
    unpaired: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read an external judge's verdicts (`pair_id`, `verdict`, optional `judge`, `reasoning`,
    `confidence`) into ai_labels rows. One verdict per pair and judge. `unpaired` maps pair ids
    the batch will never make to the reason (a prompt with one response)."""
    path = Path(path)

    def read(known: Collection[str] | None, never: Mapping[str, str] | None) -> pd.DataFrame:
        return bulk_or_line_by_line(lambda: _ai_labels_in_bulk(path, config, known, never), lambda: _ai_labels_line_by_line(path, config, known, never))

    return _checked("ai_labels", [path], config, read, known_pairs, unpaired)


def _shape(config: BatchConfig) -> dict[str, Any]:
    """What of the batch's settings shapes imported rows (the cache key beside the files' bytes)."""
    return {"label_map": config.label_map, "judge": config.external_judge, "guideline_version": config.imported_guideline_version}


def _as_set(ids: Any) -> Collection[str]:
    return ids if isinstance(ids, (set, frozenset)) else set(as_arrow(ids).to_pylist())


Reader = Callable[[Collection[str] | None, Mapping[str, str] | None], pd.DataFrame]


def _checked(kind: str, files: list[Path], config: BatchConfig, read: Reader, known: Any, unpaired: Mapping[str, str] | None) -> pd.DataFrame:
    """The rows read() gives without the pair check (parsed once per file content), checked against
    the batch's pairs at once; on any problem read() runs again with the pairs, and raises the error
    it always has (the first bad line, whichever check it fails)."""

    def exact() -> pd.DataFrame:
        return read(None if known is None else _as_set(known), unpaired)

    try:
        frame = parsed_once(kind, files, _shape(config), lambda: read(None, None))
    except BatchInputError:
        exact()
        raise
    if not pairs_are_known(frame["pair_id"], known, unpaired):
        exact()
        raise AssertionError("the exact reader accepted pairs the bulk check rejected")
    return frame


def _ai_labels_line_by_line(path: Path, config: BatchConfig, known_pairs: Collection[str] | None, unpaired: Mapping[str, str] | None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, obj in read_jsonl(path):
        pair_id = _require_str(path, line, obj, "pair_id")
        _check_known(path, line, pair_id, known_pairs, unpaired)
        judge = str(obj.get("judge") or config.external_judge)
        if (pair_id, judge) in seen:
            raise BatchInputError(path, f"second verdict of judge {judge!r} for pair {pair_id!r} (first on line {seen[pair_id, judge]})", line=line, field="pair_id")
        seen[pair_id, judge] = line
        if "verdict" not in obj:
            raise BatchInputError(path, "missing", line=line, field="verdict")
        label = map_label(obj["verdict"], config.label_map)
        confidence = obj.get("confidence")
        if confidence is not None and (not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1):
            raise BatchInputError(path, f"must be a number in [0, 1], got {confidence!r}", line=line, field="confidence")
        raw = json.dumps({"verdict": obj["verdict"], "reasoning": obj.get("reasoning")}, ensure_ascii=False)
        rows.append(
            {
                "pair_id": pair_id,
                "judge": judge,
                "label": label,
                "confidence": float(confidence) if (confidence is not None and label is not None) else np.nan,
                "raw": raw,
                "guideline_version": str(obj.get("guideline_version") or config.imported_guideline_version),
            }
        )
    return _ai_rows(pd.DataFrame(rows, columns=["pair_id", "judge", "label", "confidence", "raw", "guideline_version"]), path)


def _ai_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """ai_labels rows from pair_id, judge, label, confidence, raw and guideline_version."""
    if frame.empty:
        return arrow_strings(schemas.empty(schemas.AI_LABELS))
    label = frame["label"]
    frame = frame.assign(
        status=np.where(label.notna(), "ok", "unparsed"), label_ab=label, label_ba=None, judge_prompt_version=EXTERNAL_PROMPT_VERSION,
        prompt_tokens=pd.NA, completion_tokens=pd.NA, cost_usd=np.nan,
    )
    return arrow_strings(schemas.conform(frame, schemas.AI_LABELS, name=str(path)))


_AI_COLUMNS = {name: "JSON" for name in ("pair_id", "judge", "verdict", "reasoning", "confidence", "guideline_version")}
_RAW_TEXT = "(CASE json_type({0}) WHEN 'VARCHAR' THEN {1} WHEN 'UBIGINT' THEN CAST({0} AS VARCHAR) WHEN 'BIGINT' THEN CAST({0} AS VARCHAR) END)"
"""str(value).strip() of a string or integer label, NULL for any other JSON type."""
_AI_SELECT = f"""
SELECT pair_id, judge, verdict_text AS label, verdict IS NULL AS no_verdict, confidence, raw_json AS raw, guideline_version,
    hash(pair_id, judge) AS key, coalesce(
    pair_id IS NOT NULL AND NOT {sql_blank('pair_id')} AND judge IS NOT NULL AND guideline_version IS NOT NULL
    AND (verdict IS NULL OR verdict_text IS NOT NULL) AND (reasoning IS NULL OR json_type(reasoning) = 'VARCHAR')
    AND (confidence_json IS NULL OR confidence BETWEEN 0 AND 1) AND NOT regexp_matches(raw_json, {UPPER_ESCAPES}), false) AS ok
FROM (
    SELECT {sql_id('pair_id')} AS pair_id, {sql_or_default('judge', 'judge')} AS judge, verdict, reasoning,
        {_RAW_TEXT.format('verdict', sql_strip("verdict ->> '$'"))} AS verdict_text,
        '{{"verdict": ' || coalesce(CAST(verdict AS VARCHAR), 'null') || ', "reasoning": ' || coalesce(CAST(reasoning AS VARCHAR), 'null') || '}}' AS raw_json,
        confidence AS confidence_json, {sql_number('confidence')} AS confidence,
        {sql_or_default('guideline_version', 'guideline_version')} AS guideline_version
    FROM lines
)
"""


def _ai_labels_in_bulk(path: Path, config: BatchConfig, known_pairs: Collection[str] | None, unpaired: Mapping[str, str] | None) -> pd.DataFrame:
    bulk = read_bulk(path, _AI_COLUMNS, _AI_SELECT, {"judge": config.external_judge, "guideline_version": config.imported_guideline_version})
    table = bulk.table
    _vouch(table, known_pairs, unpaired)
    no_verdict = table["no_verdict"].to_numpy()
    nulls = bulk.rows_of([line for line, obj in bulk.exact.items() if "verdict" in obj and obj["verdict"] is None])
    if no_verdict.sum() != len(nulls) or not no_verdict[nulls].all():
        raise LineByLine("a verdict is missing")  # DuckDB reads a missing verdict (an error) and a null one (unparsed) alike
    frame = arrow_frame(table.select(["pair_id", "judge", "raw", "guideline_version"]))
    frame["label"] = arrow_series(_mapped(table["label"], config.label_map))
    frame["confidence"] = np.where(frame["label"].notna(), table["confidence"].to_numpy(zero_copy_only=False), np.nan).astype("float64")
    return _ai_rows(frame, path)


def _vouch(table: pa.Table, known_pairs: Collection[str] | None, unpaired: Mapping[str, str] | None) -> None:
    """LineByLine unless every row passed its SQL checks, no two rows share their `key` (a hash of
    pair and judge or annotator: a collision only sends the file line by line) and the pairs are known."""
    if not pc.all(table["ok"]).as_py() or pc.count_distinct(table["key"]).as_py() != table.num_rows:
        raise LineByLine("a row the line-by-line reader must judge")
    if not pairs_are_known(table["pair_id"], known_pairs, unpaired):
        raise LineByLine("a pair that is never made, or not in the batch")


def _mapped(text: pa.ChunkedArray, label_map: dict[str, str]) -> pa.ChunkedArray:
    """map_label over a column of stripped raw text: the scale as it is, the rest via label_map."""
    keys = pa.array(list(label_map), pa.string())
    via_map = pc.take(pa.array(list(label_map.values()), pa.string()), pc.index_in(text, value_set=keys))
    return pc.if_else(pc.is_in(text, value_set=pa.array(SCALE)), text, via_map)


def annotation_files(batch_dir: Path) -> list[Path]:
    """The human-annotation files a batch imports: annotations.jsonl and annotations/*.jsonl."""
    files = [batch_dir / ANNOTATIONS_FILE] if (batch_dir / ANNOTATIONS_FILE).is_file() else []
    folder = batch_dir / ANNOTATIONS_DIR
    if folder.is_dir():
        files += sorted(folder.glob("*.jsonl"))
    return files


def import_human_annotations(
    files: list[Path], config: BatchConfig, *, known_pairs: Collection[str] | None = None, unpaired: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read human labels (`pair_id`, `annotator_id`, `label`, optional `role`, `dimensions`,
    `duration_s`, `created_at`, `guideline_version`) into human_annotations rows.

    The same annotator labelling the same pair twice, across all files, is an error: which of the
    two answers counts is the user's decision, not ours."""
    files = [Path(f) for f in files]

    def read(known: Collection[str] | None, never: Mapping[str, str] | None) -> pd.DataFrame:
        return bulk_or_line_by_line(lambda: _human_in_bulk(files, config, known, never), lambda: _human_line_by_line(files, config, known, never))

    return _checked("annotations", files, config, read, known_pairs, unpaired)


def _human_line_by_line(files: list[Path], config: BatchConfig, known_pairs: Collection[str] | None, unpaired: Mapping[str, str] | None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for path in files:
        for line, obj in read_jsonl(path):
            pair_id = _require_str(path, line, obj, "pair_id")
            annotator = _require_str(path, line, obj, "annotator_id")
            _check_known(path, line, pair_id, known_pairs, unpaired)
            if (pair_id, annotator) in seen:
                raise BatchInputError(path, f"annotator {annotator!r} labels pair {pair_id!r} a second time (first at {seen[pair_id, annotator]})", line=line, field="annotator_id")
            seen[pair_id, annotator] = f"{path.name} line {line}"
            if "label" not in obj:
                raise BatchInputError(path, "missing", line=line, field="label")
            label = map_label(obj["label"], config.label_map)
            if label is None:
                raise BatchInputError(path, f"{obj['label']!r} is neither on the scale ({', '.join(SCALE)}) nor in the batch's label_map", line=line, field="label")
            role = obj.get("role", "annotator")
            if role not in ("annotator", "expert"):
                raise BatchInputError(path, f"must be 'annotator' or 'expert', got {role!r}", line=line, field="role")
            dims = obj.get("dimensions", {})
            if not isinstance(dims, dict):
                raise BatchInputError(path, "must be an object of rubric scores", line=line, field="dimensions")
            duration = obj.get("duration_s")
            if duration is not None and (not isinstance(duration, (int, float)) or isinstance(duration, bool) or not 0 <= duration < MAX_DURATION_S):
                raise BatchInputError(path, f"must be a number of seconds, at least 0 and under {MAX_DURATION_S:,.0f} (one day), got {duration!r}", line=line, field="duration_s")
            rows.append(
                {
                    "pair_id": pair_id,
                    "annotator_id": annotator,
                    "label": label,
                    "role": role,
                    "source": f"import:{path.name}",
                    "dimensions": json.dumps(dims, ensure_ascii=False, sort_keys=True),
                    "duration_s": float(duration) if duration is not None else np.nan,
                    "guideline_version": str(obj.get("guideline_version") or config.imported_guideline_version),
                    "created_at": obj.get("created_at"),
                }
            )
    return _human_rows(pd.DataFrame(rows))


def _human_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """human_annotations rows from the imported columns (none of them gold, none flagged)."""
    if frame.empty:
        return arrow_strings(schemas.empty(schemas.HUMAN_ANNOTATIONS))
    frame = frame.assign(is_gold=False, gold_label=None, flagged=False)
    return arrow_strings(schemas.conform(frame, schemas.HUMAN_ANNOTATIONS, name="imported annotations"))


_HUMAN_COLUMNS = {name: "JSON" for name in ("pair_id", "annotator_id", "label", "role", "dimensions", "duration_s", "created_at", "guideline_version")}
_HUMAN_SELECT = f"""
SELECT pair_id, annotator_id, label, coalesce(role, 'annotator') AS role, $source AS source, dimensions, duration_s, created_at,
    guideline_version, hash(pair_id, annotator_id) AS key, coalesce(
    pair_id IS NOT NULL AND NOT {sql_blank('pair_id')} AND annotator_id IS NOT NULL AND NOT {sql_blank('annotator_id')}
    AND label IS NOT NULL AND (role_json IS NULL OR role IN ('annotator', 'expert'))
    AND (dimensions IS NULL OR json_type(dimensions) = 'OBJECT')
    AND (duration_json IS NULL OR (duration_s >= 0 AND duration_s < {MAX_DURATION_S}))
    AND (created_json IS NULL OR created_at IS NOT NULL) AND guideline_version IS NOT NULL, false) AS ok
FROM (
    SELECT {sql_id('pair_id')} AS pair_id, {sql_id('annotator_id')} AS annotator_id,
        {_RAW_TEXT.format('label', sql_strip("label ->> '$'"))} AS label,
        role AS role_json, (CASE WHEN json_type(role) = 'VARCHAR' THEN role ->> '$' END) AS role,
        CAST(dimensions AS VARCHAR) AS dimensions, duration_s AS duration_json, {sql_number('duration_s')} AS duration_s,
        created_at AS created_json, (CASE WHEN json_type(created_at) = 'VARCHAR' THEN created_at ->> '$' END) AS created_at,
        {sql_or_default('guideline_version', 'guideline_version')} AS guideline_version
    FROM lines
)
"""


def _human_in_bulk(files: list[Path], config: BatchConfig, known_pairs: Collection[str] | None, unpaired: Mapping[str, str] | None) -> pd.DataFrame:
    tables = []
    for path in files:
        bulk = read_bulk(path, _HUMAN_COLUMNS, _HUMAN_SELECT, {"source": f"import:{path.name}", "guideline_version": config.imported_guideline_version})
        if any(obj.get(name, "") is None for obj in bulk.exact.values() for name in ("role", "dimensions")):
            raise LineByLine("a null role or dimensions")  # DuckDB reads them as missing, which has a default
        tables.append(bulk.table)
    if not tables:
        return _human_rows(pd.DataFrame())
    table = pa.concat_tables(tables)
    _vouch(table, known_pairs, unpaired)
    label = _mapped(table["label"], config.label_map)
    if label.null_count:
        raise LineByLine("a label neither on the scale nor in label_map")
    frame = arrow_frame(table.drop_columns(["ok", "key", "label", "dimensions"]))
    frame["label"] = arrow_series(label)
    frame["dimensions"] = arrow_series(_sorted_objects(table["dimensions"]))
    return _human_rows(frame)


def _sorted_objects(raw: pa.ChunkedArray) -> pa.Array:
    """Each JSON object as json.dumps(sort_keys=True) writes it ("{}" where missing), parsed once
    per distinct text."""
    encoded = raw.combine_chunks().dictionary_encode() if raw.num_chunks else pa.array([], pa.string()).dictionary_encode()
    try:
        texts = [json.dumps(json.loads(u), ensure_ascii=False, sort_keys=True) for u in encoded.dictionary.to_pylist()]
    except ValueError as exc:  # a nan or inf DuckDB wrote its own way
        raise LineByLine(str(exc)) from exc
    indices = pc.fill_null(encoded.indices, len(texts))
    return pa.array([*texts, "{}"], pa.string()).take(indices)
