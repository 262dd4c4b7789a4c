import json

import pandas as pd
import pytest

from prefpipe.core import schemas
from prefpipe.core.batches import BatchConfig, BatchInputError
from prefpipe.core.ingest import import_ai_labels, import_human_annotations, map_label

CFG = BatchConfig(label_map={"1": "A>B", "2": "B>A", "0": "A=B", "Tie": "A=B"}, external_judge="ext", imported_guideline_version="v0")


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_map_label():
    assert map_label("A>>B", {}) == "A>>B"
    assert map_label(1, CFG.label_map) == "A>B"
    assert map_label("Tie", CFG.label_map) == "A=B"
    assert map_label("garbage", CFG.label_map) is None
    assert map_label(None, CFG.label_map) is None


def test_external_verdicts_keep_unparsed_as_unparsed(tmp_path):
    path = jsonl(tmp_path / "ai.jsonl", [
        {"pair_id": "p:0", "verdict": "1", "reasoning": "first is right"},
        {"pair_id": "p2:0", "verdict": "garbage"},
        {"pair_id": "p3:0", "verdict": "B>>A", "judge": "other", "confidence": 0.9},
    ])
    df = import_ai_labels(path, CFG, guideline_version="g1", known_pairs={"p:0", "p2:0", "p3:0"})
    assert list(df.columns) == list(schemas.AI_LABELS)
    assert df["label"].tolist()[0] == "A>B" and pd.isna(df["label"].tolist()[1])
    assert df["status"].tolist() == ["ok", "unparsed", "ok"]
    assert df["judge"].tolist() == ["ext", "ext", "other"]
    assert json.loads(df.loc[1, "raw"])["verdict"] == "garbage"
    assert pd.isna(df.loc[0, "confidence"]) and df.loc[2, "confidence"] == 0.9
    assert (df["judge_prompt_version"] == "external").all() and (df["guideline_version"] == "v0").all()


def test_external_verdict_errors(tmp_path):
    with pytest.raises(BatchInputError, match=r"line 2, field 'pair_id'.*not in this batch"):
        import_ai_labels(jsonl(tmp_path / "a.jsonl", [{"pair_id": "p:0", "verdict": "1"}, {"pair_id": "zz", "verdict": "1"}]), CFG, guideline_version="g", known_pairs={"p:0"})
    with pytest.raises(BatchInputError, match=r"line 2, field 'pair_id'.*second verdict"):
        import_ai_labels(jsonl(tmp_path / "a.jsonl", [{"pair_id": "p:0", "verdict": "1"}, {"pair_id": "p:0", "verdict": "2"}]), CFG, guideline_version="g")
    with pytest.raises(BatchInputError, match=r"line 1, field 'verdict'"):
        import_ai_labels(jsonl(tmp_path / "a.jsonl", [{"pair_id": "p:0"}]), CFG, guideline_version="g")


def test_human_annotations_import_and_errors(tmp_path):
    a = jsonl(tmp_path / "annotations.jsonl", [
        {"pair_id": "p:0", "annotator_id": "ann1", "label": 1, "duration_s": 12.5},
        {"pair_id": "p:0", "annotator_id": "ann2", "label": "B>>A", "dimensions": {"helpfulness": 4}, "role": "expert"},
    ])
    df = import_human_annotations([a], CFG, known_pairs={"p:0"})
    assert list(df.columns) == list(schemas.HUMAN_ANNOTATIONS)
    assert df["label"].tolist() == ["A>B", "B>>A"]
    assert df["role"].tolist() == ["annotator", "expert"]
    assert df["source"].unique().tolist() == ["import:annotations.jsonl"]
    assert json.loads(df.loc[1, "dimensions"]) == {"helpfulness": 4}
    assert df.loc[0, "duration_s"] == 12.5 and pd.isna(df.loc[1, "duration_s"])

    b = jsonl(tmp_path / "more.jsonl", [{"pair_id": "p:0", "annotator_id": "ann1", "label": 2}])
    with pytest.raises(BatchInputError, match=r"more.jsonl, line 1, field 'annotator_id'.*second time.*annotations.jsonl line 1"):
        import_human_annotations([a, b], CFG)
    bad = jsonl(tmp_path / "bad.jsonl", [{"pair_id": "p:0", "annotator_id": "x", "label": "garbage"}])
    with pytest.raises(BatchInputError, match=r"bad.jsonl, line 1, field 'label'"):
        import_human_annotations([bad], CFG)
    neg = jsonl(tmp_path / "neg.jsonl", [{"pair_id": "p:0", "annotator_id": "x", "label": 1, "duration_s": -3}])
    with pytest.raises(BatchInputError, match=r"field 'duration_s'"):
        import_human_annotations([neg], CFG)
    assert import_human_annotations([], CFG).empty
