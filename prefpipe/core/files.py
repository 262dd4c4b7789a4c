"""Writing files atomically and turning frames into plain JSON-able records.

Shared by every layer that writes output (exports, reports, the LLM commands' JSON lines, the
command line), so it lives in core: a reader never sees half a file, and a failed write leaves
the previous file in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


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
    """`obj` as an indented JSON file, written atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8"))


def plain_records(frame: "pd.DataFrame") -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, missing values as None (JSON null)."""
    return frame.astype("object").where(frame.notna(), None).to_dict("records")
