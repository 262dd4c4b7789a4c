"""Pieces every export format shares: which pairs go out, rows as plain JSON-ready dicts, how an
AI judge is named, the human_annotations rows an import makes, and writing a JSON file atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefpipe import schemas


def kept_pairs(response_pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs the pipeline did not drop (dropped pairs never go to annotators or trainers)."""
    if "dropped" not in response_pairs.columns:
        return response_pairs
    return response_pairs[~response_pairs["dropped"].fillna(False).astype(bool)]


def plain_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, missing values as None (JSON null)."""
    return frame.astype("object").where(frame.notna(), None).to_dict("records")


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


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call write(temporary path), then rename onto `path`: a reader never sees half a file and a
    failed write leaves the previous file in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8"))
