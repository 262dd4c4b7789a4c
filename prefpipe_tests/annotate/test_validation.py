"""What enqueue is given, checked before anything is written: frames of any dtype, empty ones too."""

from __future__ import annotations

import pandas as pd
import pytest

from prefpipe.annotate.errors import FieldError
from prefpipe.annotate.store.validation import _check_frame
from prefpipe_tests.annotate.conftest import enqueue, gold_pairs, pairs

TASK_COLUMNS = ["pair_id", "prompt", "response_a", "response_b", "route", "priority"]
GOLD_COLUMNS = ["pair_id", "prompt", "response_a", "response_b", "label"]
DTYPES = ["string", "string[pyarrow]", object, "category", "float64"]


def empty(columns: list[str], dtype) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=dtype) for c in columns})


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_empty_frame_of_any_dtype_passes_the_checks(dtype):
    _check_frame(empty(TASK_COLUMNS, dtype), tuple(TASK_COLUMNS[:4]), "tasks")


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_tasks_but_gold_loads_the_gold(store, dtype):
    counts = enqueue(store, "b1", empty(TASK_COLUMNS, dtype), gold=gold_pairs(2).astype("string"))
    assert counts["inserted"] == 0 and counts["gold_inserted"] == 2
    assert sorted(store.gold_items()["pair_id"]) == ["g0", "g1"]


def test_string_dtype_rows_are_still_checked(store):
    tasks = pairs(2).astype({c: "string" for c in TASK_COLUMNS[:5]})
    tasks.loc[1, "response_b"] = pd.NA
    with pytest.raises(FieldError, match=r"tasks.response_b.*row 1"):
        enqueue(store, "b1", tasks)
    blank = pairs(2).astype({"pair_id": "string"})
    blank.loc[0, "pair_id"] = "  "
    with pytest.raises(FieldError, match=r"tasks.pair_id.*row 0: empty"):
        enqueue(store, "b1", blank)
    bad_gold = gold_pairs(2).astype("string")
    bad_gold.loc[1, "label"] = pd.NA
    with pytest.raises(FieldError, match=r"gold.label.*'g1'"):
        enqueue(store, "b1", pairs(1), gold=bad_gold)
    assert store.batch_status("b1")["items"] == 0


@pytest.mark.parametrize("blank", ["", " ", "\t\n", "\u3000", "\x1c\x85", "\u2028 \u00a0"])
def test_a_pair_id_python_would_strip_to_nothing_is_empty_whatever_the_dtype(store, blank):
    for dtype in (object, "string[pyarrow]", "category"):
        tasks = pairs(3).astype({"pair_id": dtype})
        tasks["pair_id"] = tasks["pair_id"].astype(object).where(tasks.index != 2, blank).astype(dtype)
        with pytest.raises(FieldError, match=r"tasks.pair_id.*row 2: empty"):
            enqueue(store, "b1", tasks)
    assert enqueue(store, "b1", pairs(1).assign(pair_id="\u200b"))["inserted"] == 1  # a zero-width space is not whitespace to Python


@pytest.mark.parametrize("bad", [7, None, float("nan"), b"bytes"])
def test_a_value_that_is_not_text_is_named_by_column_and_row(store, bad):
    for dtype in (object, "category"):
        tasks = pairs(4)
        tasks["response_a"] = pd.Series(["x", "y", bad, "z"], dtype=object).astype(dtype)
        with pytest.raises(FieldError, match=r"tasks.response_a.*row 2: .* is not text"):
            enqueue(store, "b1", tasks)
    assert store.batch_status("b1")["items"] == 0
