from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import schemas
from prefpipe.exports.trl import TRL_COLUMNS, to_trl, trl_table, write_trl


@pytest.fixture
def preference_dataset() -> pd.DataFrame:
    """preference_dataset rows as the warehouse holds them (with batch_id)."""
    rows = pd.DataFrame(
        {
            "pair_id": ["p1:0", "p2:0", "p3:0"],
            "prompt": ["Say hi", "Résumé — in 3 words", 'Quote "this" & <that>'],
            "chosen": ["Hi!", "Short résumé", "“this”"],
            "rejected": ["Hello there.", "Long words", "this"],
            "label": ["A>B", "B>>A", "A>>B"],
            "margin": [0.75, 1.8, np.nan],
            "label_source": ["human:majority", "ai:ai", "expert:expert"],
            "guideline_version": ["g2", None, None],
        }
    )
    return schemas.conform(rows, schemas.PREFERENCE_DATASET).assign(batch_id="b1")


def test_to_trl_adds_provenance(preference_dataset, small_batch):
    ai = small_batch["ai_labels"].assign(pair_id=["p2:0", "p2:0", "p1:0", "p3:0"])
    human = small_batch["human_annotations"]
    trl = to_trl(preference_dataset, ai_labels=ai, human_annotations=human)
    assert list(trl.columns) == list(TRL_COLUMNS)
    assert trl["batch_id"].tolist() == ["b1"] * 3
    # judge prompt version only where an AI label decided
    assert trl["judge_prompt_version"].tolist() == [None, "jp1", None]
    # a version already on the row is kept; a missing one comes from the labels behind it
    assert trl.loc[0, "guideline_version"] == "g2"
    assert trl.loc[1, "guideline_version"] == "g2"  # the two usable AI verdicts on p2:0 (the unparsed one does not count)
    assert trl.loc[2, "guideline_version"] == "g1+g2"  # expert label: the human annotations of p3:0
    assert np.isnan(trl.loc[2, "margin"])


def test_to_trl_without_label_information_leaves_versions_unknown(preference_dataset):
    trl = to_trl(preference_dataset.drop(columns="batch_id"), batch_id="b9")
    assert trl["batch_id"].tolist() == ["b9"] * 3
    assert trl["guideline_version"].tolist() == ["g2", None, None]
    assert trl["judge_prompt_version"].isna().all()


def test_files_load_in_pandas_and_datasets(preference_dataset, tmp_path, monkeypatch):
    # local files only: the hub is never asked (set before `datasets` is first imported)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets", reason="the `datasets` package is in the test extra")
    trl = to_trl(preference_dataset)
    paths = write_trl(trl, tmp_path / "out")
    back = pd.read_parquet(paths["parquet"])
    pd.testing.assert_frame_equal(back, trl, check_dtype=False)
    ds = datasets.load_dataset("parquet", data_files=str(paths["parquet"]), cache_dir=str(tmp_path / "hf"), split="train")
    assert ds.column_names == list(TRL_COLUMNS)
    assert ds.num_rows == 3
    assert ds[1]["chosen"] == "Short résumé" and ds[1]["margin"] == pytest.approx(1.8)
    assert ds[2]["margin"] is None and ds[0]["judge_prompt_version"] is None
    assert str(ds.features["margin"].dtype) == "float64"
    js = datasets.load_dataset("json", data_files=str(paths["jsonl"]), cache_dir=str(tmp_path / "hf"), split="train")
    assert js["prompt"] == trl["prompt"].tolist()
    lines = paths["jsonl"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and "Résumé" in lines[1]  # UTF-8, not \u escapes
    assert json.loads(lines[2])["margin"] is None


def test_a_malformed_frame_writes_nothing(preference_dataset, tmp_path):
    good = write_trl(to_trl(preference_dataset), tmp_path)
    before = good["parquet"].read_bytes()
    with pytest.raises(KeyError, match="margin"):
        write_trl(to_trl(preference_dataset).drop(columns="margin"), tmp_path)
    assert good["parquet"].read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl", "train.parquet"]


# ------------------------------------------------------------------------------------------------
# the export built in Arrow: the same files, byte for byte, whatever the frame holds its text in

TRICKY = ["", "plain", 'say "hi"', "back\\slash", "line\nbreak\r\n", "tab\there", "\x00\x01\x0b\x1f", "\b\f", "del\x7f",
          "résumé — ok", "😀 emoji", "\u2028\u2029", "</script>", "\\u0041", "'single'", "{}[],:"]
MARGINS = [0.75, 1.0, 2.0, 0.0, -0.0, 1 / 3, 1e-5, 3.5e-7, 1.5e12, 1e16, 123456789.5, float("inf"), float("-inf"), np.nan]


def _tricky_rows(n: int) -> pd.DataFrame:
    rows = pd.DataFrame({
        "pair_id": [f"p{i}:0" for i in range(n)],
        "prompt": [TRICKY[i % len(TRICKY)] for i in range(n)],
        "chosen": [TRICKY[(3 * i + 1) % len(TRICKY)] for i in range(n)],
        "rejected": [None if i % 7 == 0 else TRICKY[(5 * i + 2) % len(TRICKY)] for i in range(n)],
        "label": ["A>B"] * n,
        "margin": [MARGINS[i % len(MARGINS)] for i in range(n)],
        "label_source": [["ai:ai", "human:majority", None, "expert"][i % 4] for i in range(n)],
        "guideline_version": [None if i % 3 else "g9" for i in range(n)],
    })
    return schemas.conform(rows, schemas.PREFERENCE_DATASET).assign(batch_id="b1")


def _arrow_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the warehouse loader gives it: text in Arrow (pandas string[pyarrow])."""
    return frame.astype({c: pd.StringDtype("pyarrow") for c in frame.columns if str(frame[c].dtype) in ("string", "object")})


@pytest.mark.parametrize("scan_block", [1 << 20, 5])
def test_jsonl_is_what_json_dumps_writes(tmp_path, monkeypatch, scan_block):
    import prefpipe.exports.trl as trl

    monkeypatch.setattr(trl, "JSONL_CHUNK_ROWS", 7)  # several chunks, each with its own escapes
    monkeypatch.setattr(trl, "_SCAN_BLOCK", scan_block)  # escapes found in any block of the text, the last one short
    rows = _tricky_rows(60)
    frame = to_trl(rows)
    paths = write_trl(trl_table(rows), tmp_path)
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.astype(object).where(frame.notna(), None).to_dict("records"))
    assert paths["jsonl"].read_bytes() == expected.encode("utf-8")
    assert pd.read_parquet(paths["parquet"]).equals(frame)


def test_arrow_backed_frames_give_the_same_files(tmp_path, small_batch):
    rows = _tricky_rows(40)
    ai = small_batch["ai_labels"].assign(pair_id=["p1:0", "p1:0", "p2:0", "p3:0"])
    human = small_batch["human_annotations"].assign(pair_id=["p5:0", "p5:0", "p6:0", "p6:0", "p9:0", "p9:0"])
    objects = write_trl(to_trl(rows, ai_labels=ai, human_annotations=human), tmp_path / "objects")
    arrow = write_trl(trl_table(_arrow_text(rows), ai_labels=_arrow_text(ai), human_annotations=_arrow_text(human)), tmp_path / "arrow")
    for kind in ("jsonl", "parquet"):
        assert arrow[kind].read_bytes() == objects[kind].read_bytes()


def test_versions_are_sorted_distinct_and_only_filled_where_missing(small_batch):
    rows = _tricky_rows(4).assign(label_source=["human:majority", "ai:ai", "ai:ai", "expert:expert"], guideline_version=[None, None, "kept", None])
    ai = pd.DataFrame({"pair_id": ["p1:0", "p1:0", "p1:0", "p2:0", "p3:0"], "label": ["A>B"] * 5, "status": ["ok", "ok", "ok", "ok", "unparsed"],
                       "guideline_version": ["g2", "G1", "g2", "é", "g1"], "judge_prompt_version": ["jp2", "jp1", None, None, "jp1"]})
    human = pd.DataFrame({"pair_id": ["p0:0", "p0:0", "p0:0", "p3:0"], "label": ["A>B", None, "B>A", "A>B"], "guideline_version": ["h2", "h0", "h1", "h3"]})
    trl = to_trl(rows, ai_labels=ai, human_annotations=human)
    assert trl["guideline_version"].tolist() == ["h1+h2", "G1+g2", "kept", "h3"]  # code point order; a skipped item does not count
    assert trl["judge_prompt_version"].tolist() == [None, "jp1+jp2", None, None]  # an unparsed verdict does not count


def test_a_failed_jsonl_keeps_the_previous_files(preference_dataset, tmp_path, monkeypatch):
    import prefpipe.exports.trl as trl

    before = write_trl(to_trl(preference_dataset), tmp_path)
    kept = {k: p.read_bytes() for k, p in before.items()}

    def broken(table, path):
        raise OSError("disk full")

    monkeypatch.setattr(trl, "write_jsonl", broken)
    with pytest.raises(OSError, match="disk full"):
        write_trl(to_trl(preference_dataset.iloc[:1]), tmp_path)
    assert {k: p.read_bytes() for k, p in before.items()} == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl", "train.parquet"]
