"""Checks on what is loaded into the queue: the rubric, and the task and gold frames.

Everything `enqueue` is given is validated and shaped here, before anything is written, so a bad
row fails with a FieldError naming the column and row and the store is left untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import FieldError
from prefpipe.annotate.store.values import content_key
from prefpipe.core.labels import CODE, SCALE

if TYPE_CHECKING:
    import pandas as pd


def _check_rubric(rubric: Any) -> list[dict[str, Any]]:
    if not isinstance(rubric, list) or not rubric:
        raise FieldError("rubric", "must be a non-empty list of {'name', 'weight', 'description'}")
    out = []
    for i, dim in enumerate(rubric):
        if not isinstance(dim, dict) or not isinstance(dim.get("name"), str) or not dim["name"]:
            raise FieldError(f"rubric[{i}].name", "every rubric dimension needs a name")
        out.append({"name": dim["name"], "weight": dim.get("weight"), "description": dim.get("description", "")})
    return out


_TEXT_COLUMNS = ("pair_id", "prompt", "response_a", "response_b")


def _first(flags: Any) -> int | None:
    """Position of the first true flag, or None. Plain Python over any iterable, so an empty
    frame of any dtype (pandas' string dtype refuses `.any()` on an empty result) passes."""
    return next((i for i, flag in enumerate(flags) if flag), None)


def _check_frame(df: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FieldError(what, f"missing column(s) {', '.join(missing)}")
    for col in _TEXT_COLUMNS:
        bad = _first(not isinstance(v, str) for v in df[col])
        if bad is not None:
            raise FieldError(f"{what}.{col}", f"row {df.index[bad]}: {df[col].iloc[bad]!r} is not text")
    empty = _first(not v.strip() for v in df["pair_id"])
    if empty is not None:
        raise FieldError(f"{what}.pair_id", f"row {df.index[empty]}: empty pair_id")


def _prepare_tasks(tasks: pd.DataFrame, per_item: int, expert_per_item: int) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    _check_frame(tasks, (*_TEXT_COLUMNS, "route", "priority"), "tasks")
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
            "pair_id": df["pair_id"],
            "queue": queue,
            "route": df["route"],
            "prompt": df["prompt"],
            "response_a": df["response_a"],
            "response_b": df["response_b"],
            "priority": priority.astype(float),
            "labels_wanted": wanted.astype(int),
            "gold_label": None,
        }
    )
    return _with_keys(out, "tasks")


def _prepare_gold(gold: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    _check_frame(gold, (*_TEXT_COLUMNS, "label"), "gold")
    df = gold.reset_index(drop=True)
    i = _first(not (isinstance(v, str) and v in CODE) for v in df["label"])
    if i is not None:
        raise FieldError("gold.label", f"pair {df['pair_id'][i]!r}: {df['label'][i]!r} is not on the scale {', '.join(SCALE)}")
    out = pd.DataFrame(
        {
            "pair_id": df["pair_id"],
            "queue": asg.GOLD_QUEUE,
            "route": "gold",
            "prompt": df["prompt"],
            "response_a": df["response_a"],
            "response_b": df["response_b"],
            "priority": 0.0,
            "labels_wanted": 0,
            "gold_label": df["label"],
        }
    )
    return _with_keys(out, "gold")


def _with_keys(df: pd.DataFrame, what: str) -> pd.DataFrame:
    dup = df.duplicated(["pair_id", "queue"])
    if dup.any():
        raise FieldError(f"{what}.pair_id", f"{df['pair_id'][dup].iloc[0]!r} appears more than once")
    df["content_key"] = [content_key(p, a, b) for p, a, b in zip(df["prompt"], df["response_a"], df["response_b"])]
    return df
