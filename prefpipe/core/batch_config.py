"""batch.json: a batch's settings, checked by a strict pydantic model.

Strict, because a setting of the wrong type (`"external_judge": ["a", "b"]`) used to be turned
into text and carried into every label; a mistyped key is an error for the same reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefpipe.core.input_errors import BatchInputError
from prefpipe.core.jsonl import BOM, lone_surrogate
from prefpipe.core.labels import SCALE

CONFIG_FILE = "batch.json"
NO_JUDGE = "none"
"""batch.json `judge` (and `prefpipe run --judge`) that sends every pair to people."""

MAX_LABELS_PER_PAIR = 50
"""More labels per pair than any team asks for: a typo (300 for 3) is refused, not queued."""

Label = Literal[SCALE]  # type: ignore[valid-type]


class BatchConfig(BaseModel):
    """Settings from a batch's batch.json; every field is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    label_map: dict[str, Label] = Field(default_factory=dict)
    """Raw label value (as text) -> five-point label, for imported labels not written on the scale."""
    closed: bool = False
    """A closed batch is no longer rerun by the nightly schedule."""
    external_judge: str = Field("external", min_length=1)
    """Judge name given to imported AI verdicts that do not name one."""
    imported_guideline_version: str = Field("imported", min_length=1)
    """Guideline version recorded on imported labels that do not carry their own."""
    judge: Optional[str] = Field(None, min_length=1)
    """"none": no AI judge, every pair goes to people; a model name: the judge asked for this batch's
    pairs (instead of the run config's); unset: the run config's judges."""
    human_budget: Optional[int] = Field(None, ge=0)
    """Most human labels this batch may request; None means no limit."""
    labels_per_pair: Optional[int] = Field(None, ge=1, le=MAX_LABELS_PER_PAIR)
    """People's labels a pair routed to them needs before it is final (experts give one); unset: the
    run config's routing_settings.labels_per_pair (3 by default)."""
    description: str = ""


def load_batch_config(batch_dir: Path) -> BatchConfig:
    """The batch's batch.json (defaults when there is none); BatchInputError naming the field."""
    path = Path(batch_dir) / CONFIG_FILE
    if not path.is_file():
        return BatchConfig()
    data = path.read_bytes()
    data = data[len(BOM):] if data.startswith(BOM) else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BatchInputError(path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", line=line) from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchInputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from exc
    if not isinstance(raw, dict):
        raise BatchInputError(path, "expected a JSON object")
    where = lone_surrogate(raw)
    if where is not None:
        raise BatchInputError(path, "holds a lone surrogate (a \\ud800-\\udfff escape without its pair), which is not text", field=where)
    try:
        return BatchConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"unknown setting (known: {', '.join(BatchConfig.model_fields)})"
        else:
            message = f"{first['msg']}, got {first['input']!r}"
        raise BatchInputError(path, message, field=field) from exc
