"""The preference dataset in TRL's format, as Parquet and JSONL.

TRL's preference trainers (DPOTrainer, RewardTrainer) read the *standard* preference format: one
row per pair with `prompt`, `chosen` and `rejected` text (the completions without the prompt).
RewardTrainer also reads an optional `margin` column and subtracts it from the reward gap (as in
Llama 2), asking for a larger gap where the preference was strong and sure. Everything else here is
provenance, so a trainer can filter by batch, label source or version.

The rows come from the preference_dataset table (prefpipe.core.dataset.preference_rows), which orients
each decisive final label into chosen/rejected, leaves ties out, and sets

    margin = STRENGTH[label] * confidence

with STRENGTH 2 for A>>B / B>>A and 1 for A>B / B>A, and confidence the final label's posterior
(Dawid-Skene), vote share (majority, weighted) or the judge's confidence (AI). So the margin runs
from 0 (a doubtful label) to 2 (a strong, certain one). The export adds what the table lacks:
`batch_id`, the judge prompt version of AI labels, and the guideline version(s) of the labels
behind each final label when the table has none.

A batch can hold a million pairs, so the export is built in Arrow: the text columns are handed over
from the frame (no copy when they are Arrow-backed, one when they are Python objects), the versions
per pair are aggregated in DuckDB, and both files are written from the Arrow table, the JSONL a chunk
of rows at a time with the bytes Python's json writes.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prefpipe.core.files import atomic_write
from prefpipe.exports.common import HUMAN_SOURCES, arrow_column, arrow_table

TRL_COLUMNS: dict[str, pa.DataType] = {
    "prompt": pa.string(),
    "chosen": pa.string(),
    "rejected": pa.string(),
    "margin": pa.float64(),
    "pair_id": pa.string(),
    "label": pa.string(),
    "label_source": pa.string(),
    "batch_id": pa.string(),
    "guideline_version": pa.string(),
    "judge_prompt_version": pa.string(),
}
"""Columns of the exported files, in order, with their Arrow types."""

TRL_SCHEMA: pa.Schema = pa.Table.from_pandas(
    pd.DataFrame({c: pd.Series(dtype="float64" if t == pa.float64() else "object") for c, t in TRL_COLUMNS.items()}),
    schema=pa.schema(list(TRL_COLUMNS.items())), preserve_index=False,
).schema
"""TRL_COLUMNS with the pandas metadata pyarrow gives the export frame, so the Parquet file reads
back in pandas as to_trl's frame (object text, a RangeIndex)."""

JSONL_CHUNK_ROWS = 1 << 16
"""Rows turned into JSON lines at a time: bounds the memory the JSONL text takes beside the table."""

_JSON_ESCAPES: dict[str, str] = {
    "\\": "\\\\", '"': '\\"', "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
    **{chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in "\b\f\n\r\t"},
}
"""What json.dumps(ensure_ascii=False) escapes, backslash first (later escapes add backslashes)."""


def _versions_sql(table: str, column: str, *, has_status: bool) -> str:
    """A query: pair_id -> the distinct `column` values (sorted, "+"-joined, as in final_labels) of
    that pair's usable labels in `table`. Almost every pair has one value (min = max); the sorted
    join, costly at a million groups, runs only for the pairs that have several."""
    usable = "label IS NOT NULL AND pair_id IS NOT NULL" + (" AND status = 'ok'" if has_status else "")
    return f"""(
        WITH u AS (SELECT pair_id, "{column}" AS v FROM {table} WHERE {usable} AND "{column}" IS NOT NULL),
             m AS (SELECT pair_id, min(v) AS lo, max(v) AS hi FROM u GROUP BY pair_id)
        SELECT pair_id, lo AS v FROM m WHERE lo = hi
        UNION ALL
        SELECT pair_id, string_agg(DISTINCT v, '+' ORDER BY v) AS v FROM u SEMI JOIN (SELECT pair_id FROM m WHERE lo <> hi) USING (pair_id)
        GROUP BY pair_id)"""


def _labels(frame: pd.DataFrame | None, column: str) -> pa.Table | None:
    """The labels' columns the versions are read from; None when the frame cannot say."""
    if frame is None or frame.empty or column not in frame.columns:
        return None
    return arrow_table(frame, {"pair_id": pa.string(), "label": pa.string(), "status": pa.string(), column: pa.string()})


PROVENANCE_SQL = """
SELECT coalesce(k.guideline_version, CASE WHEN k.source IN {human} THEN hg.v ELSE ag.v END) AS guideline_version,
       CASE WHEN k.source = 'ai' THEN aj.v END AS judge_prompt_version
FROM (SELECT *, split_part(coalesce(label_source, ''), ':', 1) AS source FROM keys) k
LEFT JOIN {ai_guideline} ag USING (pair_id) LEFT JOIN {ai_prompt} aj USING (pair_id) LEFT JOIN {human_guideline} hg USING (pair_id)
ORDER BY k.row
"""
"""Per export row, in order: its guideline version, or the versions of the labels behind it (the
people's for a human or expert label, the judge's otherwise), and the judge prompt version of an
AI label."""


def _provenance(keys: pa.Table, ai_labels: pd.DataFrame | None, human_annotations: pd.DataFrame | None) -> pa.Table:
    """guideline_version and judge_prompt_version per row of `keys` (pair_id, label_source,
    guideline_version), in one DuckDB query; a version nobody asks for is not aggregated."""
    needs_fill = keys["guideline_version"].null_count > 0
    sources = {
        "ai_guideline": (_labels(ai_labels, "guideline_version") if needs_fill else None, "guideline_version"),
        "ai_prompt": (_labels(ai_labels, "judge_prompt_version"), "judge_prompt_version"),
        "human_guideline": (_labels(human_annotations, "guideline_version") if needs_fill else None, "guideline_version"),
    }
    nothing = "(SELECT NULL::VARCHAR AS pair_id, NULL::VARCHAR AS v WHERE false)"
    with duckdb.connect() as con:
        con.register("keys", keys.append_column("row", pa.array(np.arange(keys.num_rows))))
        parts = {}
        for name, (labels, column) in sources.items():
            if labels is None:
                parts[name] = nothing
                continue
            con.register(f"{name}_labels", labels)
            parts[name] = _versions_sql(f"{name}_labels", column, has_status="status" in labels.column_names)
        human = "(" + ", ".join(f"'{s}'" for s in HUMAN_SOURCES) + ")"
        return con.execute(PROVENANCE_SQL.format(human=human, **parts)).to_arrow_table()


def trl_table(
    preference_dataset: pd.DataFrame,
    *,
    ai_labels: pd.DataFrame | None = None,
    human_annotations: pd.DataFrame | None = None,
    batch_id: str | None = None,
) -> pa.Table:
    """The export (TRL_SCHEMA) from preference_dataset rows, as an Arrow table: what `write_trl` and
    `dataset_card` take without a pandas copy of the text.

    `batch_id` comes from the frame's own batch_id column (warehouse rows) or the argument.
    `judge_prompt_version` is known for AI labels only (from `ai_labels`); null otherwise.
    A missing `guideline_version` is filled with the version(s) of the pair's labels (the human
    annotations' for a human or expert label, the judge's for an AI label), "+"-joined when
    several; it stays null when no label says.
    """
    rows = preference_dataset
    n = len(rows)
    text = {c: arrow_column(rows[c], pa.string()) for c in ("prompt", "chosen", "rejected", "pair_id", "label", "label_source")}
    none = pa.chunked_array([pa.nulls(n, pa.string())])
    batch = arrow_column(rows["batch_id"], pa.string()) if "batch_id" in rows.columns else none
    if batch_id is not None:
        batch = pc.fill_null(batch, batch_id)
    guideline = arrow_column(rows["guideline_version"], pa.string()) if "guideline_version" in rows.columns else none
    keys = pa.table({"pair_id": text["pair_id"], "label_source": text["label_source"], "guideline_version": guideline})
    versions = _provenance(keys, ai_labels, human_annotations)
    columns = {**text, "margin": arrow_column(rows["margin"].astype("float64"), pa.float64()), "batch_id": batch,
               "guideline_version": versions["guideline_version"].cast(pa.string()),
               "judge_prompt_version": versions["judge_prompt_version"].cast(pa.string())}
    return pa.Table.from_arrays([columns[c] for c in TRL_COLUMNS], schema=TRL_SCHEMA)


def to_trl(preference_dataset: pd.DataFrame, **sources: Any) -> pd.DataFrame:
    """The export frame (TRL_COLUMNS; text as Python objects, None where missing): `trl_table`,
    with the same arguments, in pandas for callers that want a frame."""
    return trl_table(preference_dataset, **sources).to_pandas()


def as_trl_table(trl: pd.DataFrame | pa.Table) -> pa.Table:
    """The export's columns in order with TRL_SCHEMA's types, from a frame or an Arrow table;
    KeyError naming the missing columns."""
    names = trl.column_names if isinstance(trl, pa.Table) else list(trl.columns)
    missing = [c for c in TRL_COLUMNS if c not in names]
    if missing:
        raise KeyError(f"TRL export: missing column(s) {', '.join(missing)}")
    if isinstance(trl, pa.Table):
        columns = [trl[c] if trl[c].type == t else trl[c].cast(t) for c, t in TRL_COLUMNS.items()]
    else:
        columns = [arrow_column(trl[c], t) for c, t in TRL_COLUMNS.items()]
    return pa.Table.from_arrays(columns, schema=TRL_SCHEMA)


def write_trl(trl: pd.DataFrame | pa.Table, out_dir: Path, *, stem: str = "train") -> dict[str, Path]:
    """Write `<stem>.parquet` and `<stem>.jsonl` into out_dir; returns {"parquet": ..., "jsonl": ...}.

    Files are written to a temporary name and renamed, so a reader never sees half a file and a
    failed export leaves the previous ones in place (both are written before either is renamed).
    The Parquet file is encoded in a thread while the JSONL is built: Arrow lets go of the GIL.
    """
    table = as_trl_table(trl)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": out_dir / f"{stem}.parquet", "jsonl": out_dir / f"{stem}.jsonl"}

    def both(parquet_tmp: Path) -> None:
        def jsonl(jsonl_tmp: Path) -> None:
            with ThreadPoolExecutor(max_workers=1) as pool:
                parquet = pool.submit(pq.write_table, table, parquet_tmp)
                write_jsonl(table, jsonl_tmp)
                parquet.result()

        atomic_write(paths["jsonl"], jsonl)

    atomic_write(paths["parquet"], both)
    return paths


def write_jsonl(table: pa.Table, path: Path) -> None:
    """One JSON object a line, keys in column order: the bytes of json.dumps(record,
    ensure_ascii=False) for each row, built with Arrow compute a chunk of rows at a time."""
    with Path(path).open("wb") as handle:
        for batch in table.to_batches(max_chunksize=JSONL_CHUNK_ROWS):
            handle.write(_text_bytes(json_lines(batch)))


def json_lines(batch: pa.RecordBatch) -> pa.Array:
    """Each row of a batch of text and float64 columns as a JSON object and a newline. The keys,
    and the quotes around text that is never null, are literals of one element-wise join: each
    column's text is copied once, into the lines."""
    parts: list[pa.Array | str] = []
    for i, field in enumerate(batch.schema):
        column = batch.column(i)
        parts.append(("{" if i == 0 else ", ") + json.dumps(field.name, ensure_ascii=False) + ": ")
        if pa.types.is_floating(field.type):
            parts.append(_json_float(column))
        elif (text := _escaped(column)).null_count == 0:
            parts += ['"', text, '"']
        else:
            parts.append(pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null"))
    parts.append("}\n")
    merged: list[pa.Array | str] = []
    for part in parts:  # neighbouring literals as one
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return pc.binary_join_element_wise(*merged, "")


def _escaped(column: pa.Array) -> pa.Array:
    """The text escaped as json.dumps(ensure_ascii=False) escapes it, without the quotes (null
    stays null): backslash, quote and the control characters; everything else stays as it is."""
    if column.type != pa.string():
        column = column.cast(pa.string())
    text = column
    present = _escaped_in(column)
    for char, escape in _JSON_ESCAPES.items():
        if char in present:
            text = pc.replace_substring(text, char, escape)
    return text


_SCAN_BLOCK = 1 << 20
"""Bytes scanned at a time: the masks of a block stay in the cache, where whole-column masks did not."""


def _escaped_in(column: pa.Array) -> set[str]:
    """The characters of the text that JSON escapes, found in its UTF-8 bytes (they are all
    ASCII, and no byte of a longer character is below 0x80): a replace runs only for those."""
    if len(column) == 0:
        return set()
    data = np.frombuffer(_text_bytes(column), dtype=np.uint8)
    found: set[int] = set()
    for start in range(0, len(data), _SCAN_BLOCK):
        block = data[start:start + _SCAN_BLOCK]
        hits = block < 0x20
        hits |= block == 0x22
        hits |= block == 0x5C
        if hits.any():
            found.update(np.unique(block[hits]).tolist())
    return {chr(c) for c in found}


def _json_float(column: pa.Array) -> pa.Array:
    """float.__repr__ per value as json.dumps writes it (Infinity for inf), null for NaN or missing.

    Arrow's cast writes the same shortest digits as repr; it writes 1 for 1.0, and other notation
    below 1e-4 and from 1e10 on, where repr decides (rarely: margins run from 0 to 2)."""
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    size = np.abs(values)
    integral = np.isfinite(values) & (np.floor(values) == values) & (size < 1e10)
    text = pc.cast(column.cast(pa.float64()), pa.string())
    text = pc.if_else(pa.array(integral), pc.binary_join_element_wise(text, ".0", ""), text)
    odd = ~np.isnan(values) & ~((values == 0) | ((size >= 1e-4) & (size < 1e10)))
    if odd.any():
        text = pc.replace_with_mask(text, pa.array(odd), pa.array([json.dumps(float(v)) for v in values[odd]], pa.string()))
    return pc.if_else(pa.array(np.isnan(values)), "null", text)


def _text_bytes(array: pa.Array) -> pa.Buffer:
    """The values of a string array back to back (its data buffer between its first and last offset)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    data = array.buffers()[2]
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])) if data is not None else pa.py_buffer(b"")
