"""Checks on what is loaded into the queue: the rubric, and the task and gold frames.

Everything `enqueue` is given is validated and shaped here, before anything is written, so a bad
row fails with a FieldError naming the column and row and the store is left untouched. A frame
becomes its rows without their texts (`pair_id`, `queue`, `route`, `priority`, `labels_wanted`,
`gold_label`) and its three texts as Arrow large_string columns: a million pairs' texts are
checked in bulk and never become Python objects here; a column is scanned in Python only to name
the row it fails on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import FieldError
from prefpipe.core.labels import CODE, SCALE

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

TEXTS = ("prompt", "response_a", "response_b")
_TEXT_COLUMNS = ("pair_id", *TEXTS)


def _check_rubric(rubric: Any) -> list[dict[str, Any]]:
    if not isinstance(rubric, list) or not rubric:
        raise FieldError("rubric", "must be a non-empty list of {'name', 'weight', 'description'}")
    out = []
    for i, dim in enumerate(rubric):
        if not isinstance(dim, dict) or not isinstance(dim.get("name"), str) or not dim["name"]:
            raise FieldError(f"rubric[{i}].name", "every rubric dimension needs a name")
        out.append({"name": dim["name"], "weight": dim.get("weight"), "description": dim.get("description", "")})
    return out


def _first(flags: Any) -> int | None:
    """Position of the first true flag, or None. Plain Python over any iterable, so an empty
    frame of any dtype (pandas' string dtype refuses `.any()` on an empty result) passes."""
    return next((i for i, flag in enumerate(flags) if flag), None)


@lru_cache(maxsize=1)
def _blank() -> str:
    """RE2 pattern of a string `str.strip()` empties: Python's own whitespace, code point by code point."""
    spaces = "".join(f"\\x{{{c:x}}}" for c in range(0x110000) if chr(c).isspace())
    return f"^[{spaces}]*$"


def _arrow_text(values: pd.Series) -> pa.ChunkedArray | None:
    """The column as Arrow large_string when every value is certainly text (Arrow-backed text is
    taken as it is, Python text converted once); None when some value may not be."""
    import pandas as pd
    import pyarrow as pa

    dtype = values.dtype
    if not len(values):  # an empty frame's columns may be of any dtype
        return pa.chunked_array([], pa.large_string())
    if isinstance(dtype, (pd.ArrowDtype, pd.StringDtype)) and dtype.storage == "pyarrow":
        array = pa.chunked_array(values.array.__arrow_array__())
        text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
        return array.cast(pa.large_string()) if text and array.null_count == 0 else None
    if isinstance(dtype, pd.CategoricalDtype) or dtype == object or isinstance(dtype, pd.StringDtype):
        objects = values.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(objects, skipna=False) == "string":
            return pa.chunked_array([pa.array(objects, pa.large_string())])
    return None


def _check_frame(df: pd.DataFrame, required: tuple[str, ...], what: str) -> dict[str, pa.ChunkedArray]:
    """The frame's pair_id and texts as Arrow, checked: all text, no empty pair_id."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FieldError(what, f"missing column(s) {', '.join(missing)}")
    out = {}
    for col in _TEXT_COLUMNS:
        array = _arrow_text(df[col])
        if array is None:
            bad = _first(not isinstance(v, str) for v in df[col])
            if bad is not None:
                raise FieldError(f"{what}.{col}", f"row {df.index[bad]}: {df[col].iloc[bad]!r} is not text")
            array = pa.chunked_array([pa.array(df[col].to_numpy(dtype=object), pa.large_string())])  # text of an odd dtype
        out[col] = array
    empty = np.flatnonzero(pc.match_substring_regex(out["pair_id"], _blank()).to_numpy(zero_copy_only=False))
    if len(empty):
        raise FieldError(f"{what}.pair_id", f"row {df.index[empty[0]]}: empty pair_id")
    return out


def _prepare_tasks(tasks: pd.DataFrame, per_item: int, expert_per_item: int) -> tuple[pd.DataFrame, dict[str, pa.ChunkedArray]]:
    """The task rows (without texts) and their texts, checked."""
    import numpy as np
    import pandas as pd

    checked = _check_frame(tasks, (*_TEXT_COLUMNS, "route", "priority"), "tasks")
    df = tasks.reset_index(drop=True)
    queue = df["route"].map(asg.ROUTE_TO_QUEUE)
    if queue.isna().any():
        i = int(np.flatnonzero(queue.isna())[0])
        raise FieldError(
            "tasks.route",
            f"pair {df['pair_id'][i]!r}: {df['route'][i]!r} is not one of {', '.join(asg.ROUTE_TO_QUEUE)}",
        )
    priority = pd.to_numeric(df["priority"], errors="coerce")
    if priority.isna().any() or not np.isfinite(priority.to_numpy(dtype=float)).all():
        i = int(np.flatnonzero(~np.isfinite(priority.to_numpy(dtype=float)))[0])
        raise FieldError("tasks.priority", f"pair {df['pair_id'][i]!r}: {df['priority'][i]!r} is not a number")
    default_wanted = np.where(queue.eq(asg.EXPERT_QUEUE), expert_per_item, per_item)
    if "labels_wanted" in df.columns:
        wanted = pd.to_numeric(df["labels_wanted"], errors="coerce").to_numpy(dtype=float)
        wanted = np.where(np.isnan(wanted), default_wanted, wanted)
    else:
        wanted = default_wanted.astype(float)
    if (wanted < 1).any() or (wanted != np.round(wanted)).any():
        i = int(np.flatnonzero((wanted < 1) | (wanted != np.round(wanted)))[0])
        raise FieldError("tasks.labels_wanted", f"pair {df['pair_id'][i]!r}: {wanted[i]!r} must be a whole number >= 1")
    out = pd.DataFrame(
        {
            "pair_id": _pair_ids(checked),
            "queue": queue.astype(object),
            "route": df["route"].astype(object),
            "priority": priority.astype(float),
            "labels_wanted": wanted.astype(int),
            "gold_label": None,
        }
    )
    return _unique(out, "tasks"), {col: checked[col] for col in TEXTS}


def _prepare_gold(gold: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pa.ChunkedArray]]:
    """The gold rows (without texts) and their texts, checked."""
    import pandas as pd

    checked = _check_frame(gold, (*_TEXT_COLUMNS, "label"), "gold")
    df = gold.reset_index(drop=True)
    i = _first(not (isinstance(v, str) and v in CODE) for v in df["label"])  # a batch's gold: hundreds, not millions
    if i is not None:
        raise FieldError("gold.label", f"pair {df['pair_id'][i]!r}: {df['label'][i]!r} is not on the scale {', '.join(SCALE)}")
    out = pd.DataFrame(
        {
            "pair_id": _pair_ids(checked),
            "queue": asg.GOLD_QUEUE,
            "route": "gold",
            "priority": 0.0,
            "labels_wanted": 0,
            "gold_label": df["label"].astype(object),
        }
    )
    return _unique(out, "gold"), {col: checked[col] for col in TEXTS}


def _pair_ids(checked: dict[str, pa.ChunkedArray]) -> pd.Series:
    """The checked pair ids as Python text: the key the stored items are merged on."""
    import pandas as pd

    return pd.Series(checked["pair_id"].to_numpy(zero_copy_only=False), dtype=object)


def _unique(df: pd.DataFrame, what: str) -> pd.DataFrame:
    dup = df.duplicated(["pair_id", "queue"])
    if dup.any():
        raise FieldError(f"{what}.pair_id", f"{df['pair_id'][dup].iloc[0]!r} appears more than once")
    return df
