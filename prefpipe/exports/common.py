"""Pieces every export format shares: which pairs go out, how an AI judge is named, and the
human_annotations rows an import makes. (Atomic writes and plain records: `prefpipe.core.files`.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import schemas

HUMAN_SOURCES = ("human", "expert")
"""label_source / final_labels.source values (before any ":method") whose labels are people's."""


def dropped_mask(response_pairs: pd.DataFrame) -> np.ndarray:
    """True for the pairs the pipeline dropped (a missing flag is not a drop)."""
    if "dropped" not in response_pairs.columns:
        return np.zeros(len(response_pairs), dtype=bool)
    return response_pairs["dropped"].fillna(False).astype(bool).to_numpy()


def kept_pairs(response_pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs the pipeline did not drop (dropped pairs never go to annotators or trainers)."""
    if "dropped" not in response_pairs.columns:
        return response_pairs
    return response_pairs[~dropped_mask(response_pairs)]


def sql_case(column: str, mapping: Mapping[str, Any]) -> str:
    """SQL for mapping[column] (NULL for a missing value or one the mapping lacks): a label's
    direction or strength, spelled out for DuckDB."""
    return "CASE " + column + "".join(f" WHEN '{k}' THEN {v!r}" for k, v in mapping.items()) + " END"


def arrow_column(values: pd.Series, type: pa.DataType | None = None) -> pa.ChunkedArray:
    """A frame's column in Arrow: Arrow-backed text is handed over without a copy, Python objects
    are converted once; NaN becomes null. `type` casts (large_string to string keeps the text buffer)."""
    array = values.array
    out = array.__arrow_array__() if hasattr(array, "__arrow_array__") else pa.array(values, from_pandas=True)
    out = out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])
    if type is not None and out.type != type:
        out = pa.nulls(len(out), type) if out.type == pa.null() else out.cast(type)
        out = out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out], type=type)
    return out


def source_is(source: pa.ChunkedArray, sources: tuple[str, ...]) -> pa.ChunkedArray:
    """The source before any ":method" is one of `sources` (a missing source is none of them)."""
    first = pc.list_element(pc.split_pattern(pc.fill_null(source, ""), ":", max_splits=1), 0)
    return pc.is_in(first, value_set=pa.array(sources, pa.string()))


def arrow_table(frame: pd.DataFrame | None, columns: dict[str, pa.DataType | None]) -> pa.Table | None:
    """The frame's `columns` that it has, in Arrow (for DuckDB or Arrow compute: no pandas copy of
    the rest); None for no frame."""
    if frame is None:
        return None
    return pa.table({c: arrow_column(frame[c], t) for c, t in columns.items() if c in frame.columns})


def judge_agent(judge: str, judge_prompt_version: str | None) -> str:
    """"<judge>@<judge prompt version>": the name an AI verdict carries in other tools."""
    return f"{judge}@{judge_prompt_version}" if judge_prompt_version else str(judge)


def imported_annotation(
    pair_id: str,
    annotator_id: str,
    label: str,
    *,
    source: str,
    dimensions: Mapping[str, Any],
    duration_s: float = np.nan,
    created_at: str | None = None,
    guideline_version: str | None = None,
) -> dict[str, Any]:
    """One human_annotations row read from another tool's file (`source` names the file). Gold and
    flag columns are left unknown for the pipeline to fill, never guessed here."""
    return {
        "pair_id": str(pair_id),
        "annotator_id": annotator_id,
        "label": label,
        "role": "annotator",
        "source": f"import:{source}",
        "dimensions": json.dumps(dict(dimensions), sort_keys=True),
        "duration_s": duration_s,
        "is_gold": pd.NA,
        "gold_label": None,
        "flagged": pd.NA,
        "guideline_version": guideline_version,
        "created_at": created_at,
    }


def annotations_frame(rows: list[dict[str, Any]], *, name: str) -> pd.DataFrame:
    """human_annotations rows (schemas.HUMAN_ANNOTATIONS) from `imported_annotation` dicts."""
    if not rows:
        return schemas.empty(schemas.HUMAN_ANNOTATIONS)
    return schemas.conform(pd.DataFrame(rows), schemas.HUMAN_ANNOTATIONS, name=name)

