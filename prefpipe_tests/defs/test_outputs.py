"""The outputs group's own code paths at scale: preference_dataset's rows made in DuckDB and Arrow
are core.dataset.preference_rows' rows; its checks give the same answers run in SQL on the
warehouse rows as on a frame; published_dataset's export reads only the columns it asks for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefpipe.core.dataset import preference_rows
from prefpipe.defs.outputs import preference_dataset as assets
from prefpipe_tests.exports.conftest import small_batch  # noqa: F401 - fixture

WHITE = ["", " ", "\t\n", "\x1c", "\x85", "\u3000", "\u200b", "a", " a ", "é", "x\x00", "😀 yes"]
LABELS = ["A>>B", "A>B", "A=B", "B>A", "B>>A", None]


def _arrow_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: pd.StringDtype("pyarrow") for c in frame.columns if str(frame[c].dtype) in ("string", "object")})


def _batch(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    pairs = pd.DataFrame({"pair_id": [f"q{i:03d}:0" for i in rng.permutation(n)],
                          "prompt": [WHITE[i % len(WHITE)] for i in range(n)],
                          "response_a": [None if i % 11 == 0 else WHITE[(3 * i) % len(WHITE)] for i in range(n)],
                          "response_b": [WHITE[(3 * i if i % 17 == 0 else 5 * i + 1) % len(WHITE)] for i in range(n)]})  # some equal
    final = pairs[["pair_id"]].sample(frac=0.8, random_state=1).assign(
        label=[LABELS[i % len(LABELS)] for i in range(int(n * 0.8))], confidence=[np.nan if i % 9 == 0 else (i % 4) / 3 for i in range(int(n * 0.8))],
        n_labels=3, method=[None if i % 13 == 0 else "majority" for i in range(int(n * 0.8))], source=["human", "ai"] * int(n * 0.4),
        guideline_version=[None if i % 5 == 0 else "g1" for i in range(int(n * 0.8))])
    return final, pairs


def test_preference_rows_in_duckdb_are_the_core_rows():
    final, pairs = _batch()
    want = preference_rows(final, pairs)
    for args in ((final, pairs), (_arrow_text(final), _arrow_text(pairs))):
        got = assets.preference_frame(*args)
        assert list(got.columns) == list(want.columns) and [str(t) for t in got.dtypes] == [str(t) for t in want.dtypes]
        pd.testing.assert_frame_equal(got.astype(object).where(got.notna(), None), want.astype(object).where(want.notna(), None), check_exact=True)


def test_a_pair_twice_is_refused_as_the_merge_refused_it():
    final, pairs = _batch(10)
    decisive = final[final["label"].isin(["A>B", "B>A"])].head(1)
    with pytest.raises(ValueError, match="repeated in the final labels or the pairs"):
        assets.preference_frame(pd.concat([final, decisive]), pairs)
    with pytest.raises(ValueError, match="repeated in the final labels or the pairs"):
        assets.preference_frame(final, pd.concat([pairs, pairs[pairs["pair_id"].isin(decisive["pair_id"])]]))


def test_the_checks_read_the_same_in_the_warehouse_and_in_a_frame(tmp_path):
    """The check ops run their SQL on the batch's warehouse rows; a frame (object or Arrow text, or
    a value that is not text) gets the same answers through the same SQL."""
    import duckdb

    rows = preference_rows(*_batch(300, seed=4))
    rows.loc[rows.index[[3, 8]], "margin"] = [np.inf, -0.5]
    rows.loc[rows.index[5], "pair_id"] = rows["pair_id"].iloc[6]
    problems = assets.export_problems(rows)
    assert [p.split(" (e.g.")[0].split(" ", 2)[2] for p in problems] == [
        "whose `chosen` is missing or not text", "whose `rejected` is missing or not text", "with an empty `prompt`",
        "whose `chosen` equals `rejected`", "with a margin that is not a finite number >= 0", "with a missing or repeated `pair_id`"]
    assert problems[-1].startswith("2 row(s)") and problems[-2].startswith("2 row(s)")
    assert assets.export_problems(_arrow_text(rows)) == problems
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.register("frame", rows.assign(batch_id="b1"))
        con.execute("CREATE TABLE preference_dataset AS SELECT * FROM frame")
        for frame_result, warehouse_result in ((assets.export_result, assets.warehouse_export_result),
                                               (assets.empty_response_result, assets.warehouse_empty_response_result)):
            got, want = warehouse_result(con, "b1"), frame_result(rows)
            assert (got.passed, got.severity, got.description, str(got.metadata)) == (want.passed, want.severity, want.description, str(want.metadata))
        assert assets.warehouse_export_result(con, "other").description.startswith("no preference rows")
        assert assets.warehouse_empty_response_result(con, "other").passed
    odd = rows.astype({"chosen": object})
    odd.loc[odd.index[0], "chosen"] = 5  # not text: missing, as the check always said
    assert assets.export_problems(odd)[0].startswith(f"{int(rows['chosen'].isna().sum()) + 1} row(s) whose `chosen` is missing or not text")


def test_the_export_reads_no_column_it_does_not_ask_for(small_batch):  # noqa: F811 - the fixture
    from prefpipe.defs.outputs.published_dataset import INPUTS
    from prefpipe.exports.trl import to_trl

    rows = preference_rows(small_batch["final_labels"].assign(guideline_version=None), small_batch["response_pairs"])
    narrow = {k: small_batch[k][[c for c in INPUTS[k].metadata["columns"] if c in small_batch[k].columns]] for k in ("ai_labels", "human_annotations")}
    full = to_trl(rows, ai_labels=small_batch["ai_labels"], human_annotations=small_batch["human_annotations"], batch_id="b")
    pd.testing.assert_frame_equal(to_trl(_arrow_text(rows), ai_labels=_arrow_text(narrow["ai_labels"]),
                                         human_annotations=_arrow_text(narrow["human_annotations"]), batch_id="b"), full)
