"""Batches: the folders under data/batches/<batch_id>/ that users drop prompts into.

A batch folder holds
- prompts.jsonl (required): one JSON object a line with `prompt` (text), optional `id`, and
  optional `responses`, a list of existing candidate responses `{"model": ..., "text": ...}`;
- batch.json (optional): settings of the batch (see BatchConfig);
- ai_labels.jsonl (optional): verdicts of an external judge to import (prefpipe.core.ingest);
- annotations.jsonl and annotations/*.jsonl (optional): human labels made elsewhere to import.

Bad input fails the batch with a message naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prefpipe.core import schemas, settings
from prefpipe.core.labels import SCALE
from prefpipe.errors import PrefpipeError

PROMPTS_FILE = "prompts.jsonl"
CONFIG_FILE = "batch.json"
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class BatchInputError(PrefpipeError, ValueError):
    """Bad batch input; the message names the file, line and field."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None, field: str | None = None):
        where = str(path) + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = str(path), line, field


def is_valid_batch_id(name: str) -> bool:
    return bool(BATCH_ID_PATTERN.match(name))


def list_batches(root: Path | None = None) -> list[str]:
    """Batch ids: folders under data/batches/ with a prompts.jsonl and a valid name."""
    root = root or settings.batches_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_valid_batch_id(p.name) and (p / PROMPTS_FILE).is_file())


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a line that is not a JSON object fails."""
    with path.open("r", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BatchInputError(path, f"not valid JSON ({exc.msg} at column {exc.colno})", line=line_no) from exc
            if not isinstance(obj, dict):
                raise BatchInputError(path, f"expected a JSON object, got {type(obj).__name__}", line=line_no)
            yield line_no, obj


def prompt_id_for(text: str) -> str:
    """A stable id for a prompt given without one: the same text always gets the same id."""
    return "p-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def load_prompts(path: Path) -> pd.DataFrame:
    """Read and validate a prompts.jsonl into the `prompts` table's columns."""
    if not path.is_file():
        raise BatchInputError(path, "file not found")
    rows: list[dict[str, Any]] = []
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
        rows.append({"prompt_id": prompt_id, "prompt": prompt, "candidates": json.dumps(candidates, ensure_ascii=False), "source_line": line_no})
    if not rows:
        raise BatchInputError(path, "holds no prompts")
    return schemas.conform(pd.DataFrame(rows), schemas.PROMPTS, name="prompts")


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


@dataclass(frozen=True)
class BatchConfig:
    """Settings from a batch's batch.json; every field is optional."""

    label_map: dict[str, str] = field(default_factory=dict)
    """Raw label value (as text) -> five-point label, for imported labels not written on the scale."""
    closed: bool = False
    """A closed batch is no longer rerun by the nightly schedule."""
    external_judge: str = "external"
    """Judge name given to imported AI verdicts that do not name one."""
    imported_guideline_version: str = "imported"
    """Guideline version recorded on imported labels that do not carry their own."""
    human_budget: int | None = None
    """Most human labels this batch may request; None means no limit."""
    description: str = ""


def load_batch_config(batch_dir: Path) -> BatchConfig:
    path = batch_dir / CONFIG_FILE
    if not path.is_file():
        return BatchConfig()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BatchInputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from exc
    if not isinstance(raw, dict):
        raise BatchInputError(path, "expected a JSON object")
    known = set(BatchConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BatchInputError(path, f"unknown setting (known: {', '.join(sorted(known))})", field=unknown[0])
    label_map = raw.get("label_map", {})
    if not isinstance(label_map, dict):
        raise BatchInputError(path, "must be an object mapping raw values to labels", field="label_map")
    for key, value in label_map.items():
        if value not in SCALE:
            raise BatchInputError(path, f"{value!r} is not one of {', '.join(SCALE)}", field=f"label_map.{key}")
    budget = raw.get("human_budget")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
        raise BatchInputError(path, "must be a non-negative integer or null", field="human_budget")
    for name in ("closed",):
        if name in raw and not isinstance(raw[name], bool):
            raise BatchInputError(path, "must be true or false", field=name)
    return BatchConfig(
        label_map={str(k): v for k, v in label_map.items()},
        closed=bool(raw.get("closed", False)),
        external_judge=str(raw.get("external_judge", "external")),
        imported_guideline_version=str(raw.get("imported_guideline_version", "imported")),
        human_budget=budget,
        description=str(raw.get("description", "")),
    )


def open_batches(root: Path | None = None) -> list[str]:
    """Batches the nightly schedule reruns: every batch whose batch.json does not say closed."""
    root = root or settings.batches_dir()
    out = []
    for batch_id in list_batches(root):
        try:
            closed = load_batch_config(root / batch_id).closed
        except BatchInputError:
            closed = False  # rerun it: the run then fails with the message that names the problem
        if not closed:
            out.append(batch_id)
    return out
