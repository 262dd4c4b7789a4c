"""Reading the warehouse a chunk at a time: the same rows, in the same order, as one read."""

from __future__ import annotations

import duckdb
import pandas as pd

from prefpipe.core.warehouse import read_chunks, read_tables


def _warehouse(path) -> None:
    rows = pd.DataFrame({
        "batch_id": ["b1", "b2"] * 5,
        "prompt_id": [f"p{i}" for i in range(10)],
        "prompt": [f"Prompt {i} é" if i != 4 else None for i in range(10)],
        "candidates": ["[]"] * 10,
        "source_line": range(1, 11),
    })
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE main.prompts AS SELECT * FROM rows")


def test_chunks_are_one_read_cut_in_order(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    _warehouse(path)
    whole = read_tables(("prompts",), batch_id="b1", database=path, text_in_arrow=True)["prompts"].drop(columns="batch_id")
    chunks = list(read_chunks("prompts", batch_id="b1", database=path, rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert chunks[0]["prompt"].dtype.storage == "pyarrow"  # the text stays in Arrow


def test_no_warehouse_or_no_table_yields_nothing(tmp_path):
    assert list(read_chunks("prompts", batch_id="b1", database=tmp_path / "none.duckdb")) == []
    path = tmp_path / "warehouse.duckdb"
    _warehouse(path)
    assert list(read_chunks("response_pairs", batch_id="b1", database=path)) == []
