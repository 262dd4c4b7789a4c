"""Read a pairs file for `prefpipe queue add`: one JSON object a line.

Each object has pair_id, prompt, response_a and response_b (text); a gold file adds `label` (in
the pair's own order); a tasks file may add `route` (human | spot_check | expert) and `priority`.
Every line is checked before anything is loaded, and an error names the file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from prefpipe.core.labels import CODE, SCALE
from prefpipe.errors import PrefpipeError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED = ("pair_id", "prompt", "response_a", "response_b")
ROUTES = ("human", "spot_check", "expert")


class PairsFileError(PrefpipeError, ValueError):
    """A pairs file that cannot be loaded; the message names file, line and field."""


def read_pairs(path: str | Path, *, gold: bool = False) -> pd.DataFrame:
    """Tasks (pair_id, prompt, response_a, response_b, route, priority) or, with gold=True,
    gold pairs (pair_id, prompt, response_a, response_b, label)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PairsFileError(f"{path}: no such file")
    rows: list[dict] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairsFileError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise PairsFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            for field in REQUIRED:
                if not isinstance(obj.get(field), str):
                    raise PairsFileError(f"{where}: field '{field}' is missing or not text")
            if not obj["pair_id"].strip():
                raise PairsFileError(f"{where}: field 'pair_id' is empty")
            if obj["pair_id"] in seen:
                raise PairsFileError(f"{where}: field 'pair_id': {obj['pair_id']!r} already on line {seen[obj['pair_id']]}")
            seen[obj["pair_id"]] = lineno
            row = {f: obj[f] for f in REQUIRED}
            if gold:
                if obj.get("label") not in CODE:
                    raise PairsFileError(f"{where}: field 'label': {obj.get('label')!r} is not one of {', '.join(SCALE)}")
                row["label"] = obj["label"]
            else:
                route = obj.get("route", "human")
                if route not in ROUTES:
                    raise PairsFileError(f"{where}: field 'route': {route!r} is not one of {', '.join(ROUTES)}")
                priority = obj.get("priority", 0.0)
                if isinstance(priority, bool) or not isinstance(priority, (int, float)):
                    raise PairsFileError(f"{where}: field 'priority': {priority!r} is not a number")
                row["route"], row["priority"] = route, float(priority)
            rows.append(row)
    if not rows:
        raise PairsFileError(f"{path}: no pairs in the file")
    columns = [*REQUIRED, "label"] if gold else [*REQUIRED, "route", "priority"]
    return pd.DataFrame(rows, columns=columns)
