from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from prefpipe.exports import label_studio
from prefpipe.core.files import write_json
from prefpipe.core.labels import SCALE

ROUND_TRIP = ["pair_id", "annotator_id", "label", "dimensions", "duration_s", "created_at"]


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["label"].notna()][ROUND_TRIP].astype("object")
    out["dimensions"] = out["dimensions"].map(json.loads)  # the same scores, whatever the key order
    return out.sort_values(["pair_id", "annotator_id"]).reset_index(drop=True)


def test_export_then_import_gives_back_the_annotations(small_batch, tmp_path):
    tasks = label_studio.export_tasks(
        small_batch["response_pairs"], ai_labels=small_batch["ai_labels"],
        human_annotations=small_batch["human_annotations"], batch_id="b1",
    )
    path = write_json(tasks, tmp_path / "tasks.json")
    back = label_studio.import_annotations(label_studio.read_export(path), source=path.name)
    pd.testing.assert_frame_equal(_labelled(back), _labelled(small_batch["human_annotations"]))
    assert set(back["source"]) == {"import:tasks.json"}
    assert back["is_gold"].isna().all()  # gold status is the pipeline's to set, not guessed here


def test_tasks_carry_pairs_predictions_and_annotations(small_batch):
    tasks = label_studio.export_tasks(
        small_batch["response_pairs"], ai_labels=small_batch["ai_labels"],
        human_annotations=small_batch["human_annotations"], batch_id="b1",
    )
    assert [t["data"]["pair_id"] for t in tasks] == ["p1:0", "p2:0", "p3:0"]  # the dropped pair stays home
    first = tasks[0]
    assert first["data"]["batch_id"] == "b1" and first["data"]["response_b"] == "Hello there, friend."
    assert [p["model_version"] for p in first["predictions"]] == ["gpt-a@jp1", "gpt-b@jp1"]
    assert first["predictions"][1]["score"] == pytest.approx(0.95)
    assert first["predictions"][1]["result"][0]["value"] == {"choices": ["A>>B"]}
    assert tasks[1]["predictions"] == []  # an unparsed verdict is no prediction
    skipped = [a for a in tasks[1]["annotations"] if a["was_cancelled"]]
    assert len(skipped) == 1 and skipped[0]["result"] == []
    ratings = {r["from_name"]: r["value"] for r in first["annotations"][0]["result"] if r["type"] == "rating"}
    assert ratings == {"correctness": {"rating": 5}, "helpfulness": {"rating": 4}}


def test_label_config_is_xml_with_every_scale_point():
    root = ET.fromstring(label_studio.label_config(["helpfulness", "correctness"]))
    choices = root.find("Choices")
    assert choices.get("name") == "preference" and choices.get("toName") == "prompt"
    assert [c.get("value") for c in choices.findall("Choice")] == list(SCALE)
    assert [r.get("name") for r in root.findall("Rating")] == ["helpfulness", "correctness"]


def test_import_reads_label_studio_own_export_layout(tmp_path):
    """Label Studio's JSON export: user objects or ids in completed_by, lead_time, cancelled
    annotations, raw choice values mapped by the batch's label map."""
    exported = [
        {
            "id": 7, "data": {"pair_id": "p1:0", "prompt": "x"}, "predictions": [],
            "annotations": [
                {"id": 1, "completed_by": {"id": 3, "email": "ann@example.org", "first_name": "", "last_name": ""},
                 "result": [{"id": "r", "from_name": "preference", "to_name": "prompt", "type": "choices",
                             "value": {"choices": ["Response 2"]}}],
                 "was_cancelled": False, "lead_time": 9.5, "created_at": "2026-02-01T08:00:00.1Z"},
                {"id": 2, "completed_by": 12, "result": [{"from_name": "preference", "type": "choices",
                                                          "value": {"choices": ["A>B"]}}],
                 "was_cancelled": False, "lead_time": None, "created_at": "2026-02-01T09:00:00Z"},
                {"id": 3, "completed_by": 13, "result": [], "was_cancelled": True},
            ],
        }
    ]
    path = tmp_path / "project-1-at-2026.json"
    path.write_text(json.dumps(exported), encoding="utf-8")
    rows = label_studio.import_annotations(label_studio.read_export(path), source=path.name,
                                           label_map={"Response 2": "B>A"}, guideline_version="g7")
    assert rows["annotator_id"].tolist() == ["ann@example.org", "label-studio-user-12"]
    assert rows["label"].tolist() == ["B>A", "A>B"]
    assert rows["duration_s"].iloc[0] == 9.5 and pd.isna(rows["duration_s"].iloc[1])
    assert rows["guideline_version"].tolist() == ["g7", "g7"]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"data": {}, "annotations": []}, "task 0: data.pair_id is missing"),
        ({"data": {"pair_id": "p"}, "annotations": [{"completed_by": 1, "result": [
            {"from_name": "preference", "type": "choices", "value": {"choices": ["maybe"]}}]}]},
         "annotation 0: choice 'maybe' is neither on the scale"),
        ({"data": {"pair_id": "p"}, "annotations": [{"completed_by": None, "result": [
            {"from_name": "preference", "type": "choices", "value": {"choices": ["A>B"]}}]}]},
         "'completed_by' names no user"),
    ],
)
def test_bad_files_fail_naming_the_place(task, message):
    with pytest.raises(label_studio.LabelStudioFormatError, match=message):
        label_studio.import_annotations([task], source="f.json")


def test_invalid_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"data": }\n]', encoding="utf-8")
    with pytest.raises(label_studio.LabelStudioFormatError, match=r"broken.json: line 2"):
        label_studio.read_export(path)
