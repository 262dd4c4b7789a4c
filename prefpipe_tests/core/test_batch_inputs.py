"""validate_batch_inputs: every file of a batch folder checked before a run writes anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefpipe.core.batch_inputs import validate_batch_inputs
from prefpipe.core.batches import BatchConfig, BatchInputError
from prefpipe.core.ingest import import_human_annotations


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def responses(n: int) -> list[dict]:
    return [{"model": f"m{i}", "text": f"answer {i}"} for i in range(n)]


@pytest.fixture
def batch(tmp_path) -> Path:
    """q0 has two responses (pair q0:0), q1 three (q1:0..2), q2 one (no pair), q3 none."""
    jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "prompt": f"Question {i}", "responses": responses(n)} for i, n in enumerate((2, 3, 1, 0))])
    jsonl(tmp_path / "ai_labels.jsonl", [{"pair_id": "q0:0", "verdict": "A>B"}, {"pair_id": "q1:2", "verdict": "B>A"}])
    jsonl(tmp_path / "annotations.jsonl", [{"pair_id": "q1:1", "annotator_id": "ann1", "label": "A=B"}])
    jsonl(tmp_path / "gold.jsonl", [{"pair_id": "g1", "prompt": "Q", "response_a": "a", "response_b": "b", "label": "A>B"}])
    return tmp_path


def test_a_valid_batch_is_reported(batch):
    report = validate_batch_inputs(batch)
    assert (len(report.prompts), report.candidates.tolist(), report.pairs) == (4, [2, 3, 1, 0], 4)
    assert (report.ai_labels, report.annotations, report.gold) == (2, 1, 1)


@pytest.mark.parametrize("file", ["ai_labels.jsonl", "annotations.jsonl"])
def test_a_label_for_the_pair_of_a_one_response_prompt_names_its_line(batch, file):
    row = {"pair_id": "q2:0", "verdict": "A>B"} if file == "ai_labels.jsonl" else {"pair_id": "q2:0", "annotator_id": "ann2", "label": "A>B"}
    with open(batch / file, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(BatchInputError) as err:
        validate_batch_inputs(batch)
    assert (err.value.path, err.value.line, err.value.field) == (str(batch / file), 3 if file == "ai_labels.jsonl" else 2, "pair_id")
    assert "prompt 'q2' (prompts.jsonl line 3) has 1 response" in str(err.value)


def test_a_label_for_a_pair_beyond_the_responses_is_refused(batch):
    jsonl(batch / "annotations" / "vendor.jsonl", [{"pair_id": "q1:3", "annotator_id": "ann1", "label": "A=B"}])
    with pytest.raises(BatchInputError, match=r"vendor.jsonl, line 1, field 'pair_id': pair 'q1:3' is not in this batch"):
        validate_batch_inputs(batch)


def test_other_strategies_make_their_own_pairs(batch):
    jsonl(batch / "ai_labels.jsonl", [{"pair_id": "q3:0", "verdict": "A>B"}])
    assert validate_batch_inputs(batch, strategy="two_models").pairs is None
    with pytest.raises(BatchInputError, match="field 'pair_id'"):
        validate_batch_inputs(batch)


def test_no_prompt_with_two_responses_fails_for_existing(batch):
    jsonl(batch / "prompts.jsonl", [{"id": "q2", "prompt": "Q", "responses": responses(1)}, {"id": "q3", "prompt": "R"}])
    (batch / "ai_labels.jsonl").unlink()
    (batch / "annotations.jsonl").unlink()
    with pytest.raises(BatchInputError, match=r"prompts.jsonl, field 'responses': no prompt has two responses"):
        validate_batch_inputs(batch)
    assert validate_batch_inputs(batch, strategy="best_of_n").pairs is None


def test_a_bad_gold_line_is_a_batch_input_error(batch):
    jsonl(batch / "gold.jsonl", [{"pair_id": "g1", "prompt": "Q", "response_a": "a", "response_b": "b", "label": "A>B"},
                                 {"pair_id": "g2", "prompt": "Q", "response_a": "a", "response_b": "b", "label": "better"}])
    with pytest.raises(BatchInputError) as err:
        validate_batch_inputs(batch)
    assert (err.value.path, err.value.line, err.value.field) == (str(batch / "gold.jsonl"), 2, "label")


def test_a_bad_batch_json_comes_first(batch):
    (batch / "batch.json").write_text('{"external_judge": ["a", "b"]}', encoding="utf-8")
    jsonl(batch / "annotations.jsonl", [{"pair_id": "q0:0"}])
    with pytest.raises(BatchInputError, match=r"batch.json, field 'external_judge'"):
        validate_batch_inputs(batch)


@pytest.mark.parametrize("duration", ["1e308", "NaN", "Infinity", "86400"])
def test_a_duration_that_is_not_seconds_of_one_day_names_its_line(tmp_path, duration):
    path = tmp_path / "annotations.jsonl"
    path.write_text('{"pair_id": "p:0", "annotator_id": "a", "label": "A>B", "duration_s": 12.5}\n'
                    f'{{"pair_id": "p:0", "annotator_id": "b", "label": "A>B", "duration_s": {duration}}}\n', encoding="utf-8")
    with pytest.raises(BatchInputError, match=r"annotations.jsonl, line 2, field 'duration_s'"):
        import_human_annotations([path], BatchConfig())
