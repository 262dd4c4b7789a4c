"""Pieces every export format shares: which pairs go out, how an AI judge is named, and the
human_annotations rows an import makes. (Atomic writes and plain records: `prefpipe.core.files`.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from prefpipe.core import schemas


def kept_pairs(response_pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs the pipeline did not drop (dropped pairs never go to annotators or trainers)."""
    if "dropped" not in response_pairs.columns:
        return response_pairs
    return response_pairs[~response_pairs["dropped"].fillna(False).astype(bool)]


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

