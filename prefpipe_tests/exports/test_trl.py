from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import schemas
from prefpipe.exports.trl import TRL_COLUMNS, to_trl, write_trl


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
