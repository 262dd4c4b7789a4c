"""Read a pairs file for `prefpipe queue add`: one JSON object a line.

Each object has pair_id, prompt, response_a and response_b (text); a gold file adds `label` (in
the pair's own order); a tasks file may add `route` (human | spot_check | expert) and `priority`.
Every line is checked before anything is loaded, and an error names the file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefpipe.core.input_errors import BatchInputError
from prefpipe.core.jsonl import read_jsonl
from prefpipe.core.labels import CODE, SCALE
from prefpipe.errors import PrefpipeError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED = ("pair_id", "prompt", "response_a", "response_b")
ROUTES = ("human", "spot_check", "expert")


class PairsFileError(PrefpipeError, ValueError):
    """A pairs file that cannot be loaded; the message names file, line and field (also kept as
    attributes, with the reason alone, for callers that report them their own way)."""

    def __init__(self, path: Path, reason: str, *, line: int | None = None, field: str | None = None, colon: bool = True):
        where = f"{path}:{line}" if line is not None else str(path)
        named = (f"field '{field}': " if colon else f"field '{field}' ") if field else ""
        super().__init__(f"{where}: {named}{reason}")
        self.path, self.reason, self.line, self.field = str(path), reason, line, field


def read_pairs(path: str | Path, *, gold: bool = False) -> pd.DataFrame:
    """Tasks (pair_id, prompt, response_a, response_b, route, priority) or, with gold=True,
    gold pairs (pair_id, prompt, response_a, response_b, label)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PairsFileError(path, "no such file")
    rows: list[dict] = []
    seen: dict[str, int] = {}
    try:
        for lineno, obj in read_jsonl(path):
            rows.append(_row(path, lineno, obj, gold, seen))
    except BatchInputError as exc:  # not UTF-8, not JSON, not an object: in this file's own words
        raise PairsFileError(path, exc.reason, line=exc.line, field=exc.field) from exc
    if not rows:
        raise PairsFileError(path, "no pairs in the file")
    columns = [*REQUIRED, "label"] if gold else [*REQUIRED, "route", "priority"]
    return pd.DataFrame(rows, columns=columns)


def _row(path: Path, lineno: int, obj: dict, gold: bool, seen: dict[str, int]) -> dict:
    for field in REQUIRED:
        if not isinstance(obj.get(field), str):
            raise PairsFileError(path, "is missing or not text", line=lineno, field=field, colon=False)
    if not obj["pair_id"].strip():
        raise PairsFileError(path, "is empty", line=lineno, field="pair_id", colon=False)
    if obj["pair_id"] in seen:
        raise PairsFileError(path, f"{obj['pair_id']!r} already on line {seen[obj['pair_id']]}", line=lineno, field="pair_id")
    seen[obj["pair_id"]] = lineno
    row = {f: obj[f] for f in REQUIRED}
    if gold:
        if obj.get("label") not in CODE:
            raise PairsFileError(path, f"{obj.get('label')!r} is not one of {', '.join(SCALE)}", line=lineno, field="label")
        row["label"] = obj["label"]
        return row
    route = obj.get("route", "human")
    if route not in ROUTES:
        raise PairsFileError(path, f"{route!r} is not one of {', '.join(ROUTES)}", line=lineno, field="route")
    priority = obj.get("priority", 0.0)
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        raise PairsFileError(path, f"{priority!r} is not a number", line=lineno, field="priority")
    row["route"], row["priority"] = route, float(priority)
    return row
