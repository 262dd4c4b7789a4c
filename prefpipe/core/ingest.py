"""Import labels made elsewhere: an external judge's verdicts and human annotations.

Teams often have labels already (a previous vendor, another tool, a published set). They enter the
pipeline from the batch folder and are treated like prefpipe's own: the same scale, the same
checks, the same reports. Raw values that are not written on the five-point scale are mapped by the
batch's `label_map` (batch.json).

- An external verdict that cannot be mapped is kept as `unparsed` with its raw text and no label:
  a verdict we cannot read is not a tie.
- A human label that cannot be mapped is bad input: the batch fails naming the file, line and field,
  because silently dropping a person's work would bias every figure downstream.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.batches import BatchConfig, BatchInputError, read_jsonl
from prefpipe.core.labels import SCALE

AI_LABELS_FILE = "ai_labels.jsonl"
ANNOTATIONS_FILE = "annotations.jsonl"
ANNOTATIONS_DIR = "annotations"
EXTERNAL_PROMPT_VERSION = "external"


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


def _check_known(path: Path, line: int, pair_id: str, known: Collection[str] | None) -> None:
    if known is not None and pair_id not in known:
        raise BatchInputError(path, f"pair {pair_id!r} is not in this batch's response pairs", line=line, field="pair_id")


def import_ai_labels(
    path: Path, config: BatchConfig, *, guideline_version: str, known_pairs: Collection[str] | None = None
) -> pd.DataFrame:
    """Read an external judge's verdicts (`pair_id`, `verdict`, optional `judge`, `reasoning`,
    `confidence`) into ai_labels rows. One verdict per pair and judge."""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, obj in read_jsonl(path):
        pair_id = _require_str(path, line, obj, "pair_id")
        _check_known(path, line, pair_id, known_pairs)
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
                "status": "ok" if label is not None else "unparsed",
                "confidence": float(confidence) if (confidence is not None and label is not None) else np.nan,
                "label_ab": label,
                "label_ba": None,
                "raw": raw,
                "guideline_version": str(obj.get("guideline_version") or config.imported_guideline_version),
                "judge_prompt_version": EXTERNAL_PROMPT_VERSION,
                "prompt_tokens": pd.NA,
                "completion_tokens": pd.NA,
                "cost_usd": np.nan,
            }
        )
    if not rows:
        return schemas.empty(schemas.AI_LABELS)
    return schemas.conform(pd.DataFrame(rows), schemas.AI_LABELS, name=str(path))


def annotation_files(batch_dir: Path) -> list[Path]:
    """The human-annotation files a batch imports: annotations.jsonl and annotations/*.jsonl."""
    files = [batch_dir / ANNOTATIONS_FILE] if (batch_dir / ANNOTATIONS_FILE).is_file() else []
    folder = batch_dir / ANNOTATIONS_DIR
    if folder.is_dir():
        files += sorted(folder.glob("*.jsonl"))
    return files


def import_human_annotations(
    files: list[Path], config: BatchConfig, *, known_pairs: Collection[str] | None = None
) -> pd.DataFrame:
    """Read human labels (`pair_id`, `annotator_id`, `label`, optional `role`, `dimensions`,
    `duration_s`, `created_at`, `guideline_version`) into human_annotations rows.

    The same annotator labelling the same pair twice, across all files, is an error: which of the
    two answers counts is the user's decision, not ours."""
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for path in files:
        for line, obj in read_jsonl(path):
            pair_id = _require_str(path, line, obj, "pair_id")
            annotator = _require_str(path, line, obj, "annotator_id")
            _check_known(path, line, pair_id, known_pairs)
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
            if duration is not None and (not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0):
                raise BatchInputError(path, f"must be a non-negative number, got {duration!r}", line=line, field="duration_s")
            rows.append(
                {
                    "pair_id": pair_id,
                    "annotator_id": annotator,
                    "label": label,
                    "role": role,
                    "source": f"import:{path.name}",
                    "dimensions": json.dumps(dims, ensure_ascii=False, sort_keys=True),
                    "duration_s": float(duration) if duration is not None else np.nan,
                    "is_gold": False,
                    "gold_label": None,
                    "flagged": False,
                    "guideline_version": str(obj.get("guideline_version") or config.imported_guideline_version),
                    "created_at": obj.get("created_at"),
                }
            )
    if not rows:
        return schemas.empty(schemas.HUMAN_ANNOTATIONS)
    return schemas.conform(pd.DataFrame(rows), schemas.HUMAN_ANNOTATIONS, name="imported annotations")
