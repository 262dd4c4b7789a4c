from __future__ import annotations

import json

import pandas as pd
import pytest

from prefpipe.exports import argilla
from prefpipe.core.files import write_json

ROUND_TRIP = ["pair_id", "annotator_id", "label", "dimensions"]


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["label"].notna()][ROUND_TRIP].astype("object")
    out["dimensions"] = out["dimensions"].map(json.loads)  # the same scores, whatever the key order
    return out.sort_values(["pair_id", "annotator_id"]).reset_index(drop=True)


def test_export_then_import_gives_back_the_annotations(small_batch, tmp_path):
    human = small_batch["human_annotations"]
    records = argilla.export_records(small_batch["response_pairs"], ai_labels=small_batch["ai_labels"],
                                     human_annotations=human, batch_id="b1")
    path = write_json(records, tmp_path / "records.json")
    back = argilla.import_records(argilla.read_records(path), source=path.name,
                                  known_annotators=human["annotator_id"].unique())
    pd.testing.assert_frame_equal(_labelled(back), _labelled(human))
    # Argilla records hold no time on task or timestamp: those come back unknown, not invented
    assert back["duration_s"].isna().all() and back["created_at"].isna().all()


def test_records_follow_argilla_record_to_dict(small_batch):
    records = argilla.export_records(small_batch["response_pairs"], ai_labels=small_batch["ai_labels"],
                                     human_annotations=small_batch["human_annotations"], batch_id="b1")
    assert [r["id"] for r in records] == ["p1:0", "p2:0", "p3:0"]
    first = records[0]
    assert set(first) == {"id", "fields", "metadata", "suggestions", "responses", "vectors", "status", "_server_id"}
    assert first["fields"] == {"prompt": "Say hi", "response_a": "Hi!", "response_b": "Hello there, friend."}
    # one suggestion per question: the most confident judge
    assert first["suggestions"] == {"preference": {"value": "A>>B", "score": 0.95, "agent": "gpt-b@jp1"}}
    assert [r["value"] for r in first["responses"]["preference"]] == ["A>B", "A>>B"]
    assert first["responses"]["helpfulness"] == [{"value": 4, "user_id": argilla.user_id_for("ann-1")}]
    assert first["status"] == "completed" and first["metadata"] == {"pair_id": "p1:0", "batch_id": "b1"}
    assert records[1]["suggestions"] == {}  # the only verdict was unparsed


def test_unknown_users_keep_their_argilla_id_and_a_mapping_names_them():
    record = {"id": "p1:0", "fields": {}, "responses": {"preference": [{"value": "B>A", "user_id": "u-1"}]}}
    assert argilla.import_records([record], source="r.json")["annotator_id"].tolist() == ["argilla-user-u-1"]
    named = argilla.import_records([record], source="r.json", user_names={"u-1": "maria"})
    assert named["annotator_id"].tolist() == ["maria"]


def test_flattened_records_and_ranking_answers(tmp_path):
    """The flattened layout (to_list(flatten=True), the Hub export) with statuses, and ranking
    questions in both the SDK's and the server's value format."""
    rows = [
        {"id": "a", "pair_id": "p1:0", "preference.responses": ["A>B", "B>A", "A=B"],
         "preference.responses.users": ["u1", "u2", "u3"],
         "preference.responses.status": ["submitted", "discarded", "draft"]},
        {"id": "b", "metadata": {"pair_id": "p2:0"}, "responses": {"preference": [
            {"value": ["response_b", "response_a"], "user_id": "u1"},
            {"value": [{"value": "response_a", "rank": 1}, {"value": "response_b", "rank": 1}], "user_id": "u2"},
        ]}},
    ]
    path = tmp_path / "flat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    back = argilla.import_records(argilla.read_records(path), source=path.name, user_names={"u1": "one", "u2": "two"})
    assert back[["pair_id", "annotator_id", "label"]].values.tolist() == [
        ["p1:0", "one", "A>B"], ["p2:0", "one", "B>A"], ["p2:0", "two", "A=B"]]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"fields": {}}, "record 0: neither metadata.pair_id nor id"),
        ({"id": "p", "responses": {"preference": [{"value": "better"}]}}, "has no user_id"),
        ({"id": "p", "responses": {"preference": [{"value": "better", "user_id": "u"}]}}, "'better' is neither on the scale"),
        ({"id": "p", "responses": {"preference": [{"value": ["response_a"], "user_id": "u"}]}}, "does not rank"),
    ],
)
def test_bad_records_fail_naming_the_place(record, message):
    with pytest.raises(argilla.ArgillaFormatError, match=message):
        argilla.import_records([record], source="r.json")
