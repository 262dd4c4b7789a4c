from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from prefpipe.core import pair_codes
from prefpipe.core.labels import LabelError, to_codes


def arrow(values: list) -> pa.Array:
    return pa.array(values, pa.large_string())


def test_encode_numbers_every_array_alike_in_first_appearance_order():
    base, other, empty = pair_codes.encode(arrow(["b", "a", "c"]), arrow(["c", None, "z", "b", "z"]), arrow([]))
    assert base.tolist() == [0, 1, 2]  # distinct values first: codes are row numbers
    assert other.tolist() == [2, -1, 3, 0, 3]  # shared numbering, a new value after the first array's, null -1
    assert empty.tolist() == [] and pair_codes.encode() == []
    assert [c.tolist() for c in pair_codes.encode(arrow([]), arrow(["x"]))] == [[], [0]]


def test_positions_find_the_first_row_and_never_match_a_null():
    base, codes = pair_codes.encode(arrow(["a", "b", "a", None]), arrow(["a", "b", "q", None]))
    assert not pair_codes.unique_prefix(base) and not pair_codes.all_distinct(base)
    assert pair_codes.positions(base, codes).tolist() == [0, 1, -1, -1]
    assert pair_codes.positions(base, base).tolist() == [0, 1, 0, -1]
    unique, _ = pair_codes.encode(arrow(["x", "y"]), arrow(["y"]))
    assert pair_codes.unique_prefix(unique) and pair_codes.all_distinct(unique)
    assert pair_codes.all_distinct(np.array([-1, 0])) and not pair_codes.all_distinct(np.array([-1, -1]))  # two nulls repeat, as in pandas


def test_distinct_sorts_instead_of_hashing():
    assert pair_codes.distinct(arrow(["b", "a", "c"])) and pair_codes.distinct(arrow([]))
    assert not pair_codes.distinct(arrow(["b", "a", "b"]))


@pytest.mark.parametrize("dtype", ["object", "string[python]", "string[pyarrow]"])
def test_ids_and_text_mean_the_same_whatever_the_column_holds(dtype):
    values = pd.Series(["p1", None, "p3"], dtype=dtype)
    assert pair_codes.id_array(values).to_pylist() == values.astype(str).tolist()  # str() of each, as routing always compared them
    assert pair_codes.text_array(values).to_pylist() == ["p1", None, "p3"]
    assert pair_codes.text_array(pd.Series([1, np.nan, 2.5], dtype="object")).to_pylist() == ["1", None, "2.5"]
    assert pair_codes.text_series(pair_codes.text_array(values)).tolist() == ["p1", pd.NA, "p3"]
    assert pair_codes.constant("x", 3).to_pylist() == ["x"] * 3


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
def test_check_labels_raises_what_to_codes_raises(dtype):
    pair_codes.check_labels(pd.Series(["A>B", None, "B>>A"], dtype=dtype), field="f")
    bad = pd.Series(["A>B", "A>>>B", None, "nope"], dtype=dtype)
    with pytest.raises(LabelError) as theirs:
        to_codes(bad, field="f")
    with pytest.raises(LabelError) as ours:
        pair_codes.check_labels(bad, field="f")
    assert str(ours.value) == str(theirs.value)
    assert pair_codes.label_codes(arrow(["A>>B", None, "B>>A", "A=B"])).tolist() == [0, -1, 4, 2]
