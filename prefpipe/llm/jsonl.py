"""Writing the LLM commands' JSON-lines outputs: whole files or nothing (via core's atomic
write), so an interrupted run never leaves half a labels file where a good one was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefpipe.core.files import atomic_write, plain_records

if TYPE_CHECKING:
    import pandas as pd


def write_jsonl(path: str | Path, frame: "pd.DataFrame") -> int:
    """One JSON object a line per row, missing values as null; returns the row count."""
    records = plain_records(frame)
    text = "".join(json.dumps(r, ensure_ascii=False, default=_plain) + "\n" for r in records)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return len(records)


def _plain(value: Any) -> Any:
    """numpy scalars as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
