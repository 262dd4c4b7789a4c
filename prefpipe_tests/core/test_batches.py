import json
from pathlib import Path

import pytest

from prefpipe.core.batches import BatchInputError, list_batches, load_batch_config, load_prompts, open_batches, prompt_id_for


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_prompts_with_and_without_ids_and_candidates(tmp_path):
    path = write(
        tmp_path / "prompts.jsonl",
        [
            json.dumps({"id": "q1", "prompt": "Say hi", "responses": [{"model": "m1", "text": "hi"}, {"model": "m2", "text": "hello"}]}),
            "",
            json.dumps({"prompt": "Count to 3"}),
            json.dumps({"id": 7, "prompt": "Seven"}),
        ],
    )
    df = load_prompts(path)
    assert list(df["prompt_id"]) == ["q1", prompt_id_for("Count to 3"), "7"]
    assert list(df["source_line"]) == [1, 3, 4]
    assert json.loads(df.loc[0, "candidates"]) == [{"model": "m1", "text": "hi"}, {"model": "m2", "text": "hello"}]
    assert json.loads(df.loc[1, "candidates"]) == []


@pytest.mark.parametrize(
    "lines, line, field",
    [
        (['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": '], 2, None),
        (['{"id": "a", "prompt": "x"}', '{"id": "b"}'], 2, "prompt"),
        (['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": "  "}'], 2, "prompt"),
        (['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], 2, "id"),
        (['{"prompt": "same"}', '{"prompt": "same"}'], 2, "id"),
        (['[1, 2]'], 1, None),
        (['{"id": "a", "prompt": "x", "responses": [{"model": "m"}]}'], 1, "responses[0].text"),
        (['{"id": "a", "prompt": "x", "responses": "no"}'], 1, "responses"),
        (['{"id": true, "prompt": "x"}'], 1, "id"),
    ],
)
def test_bad_prompts_name_file_line_and_field(tmp_path, lines, line, field):
    path = write(tmp_path / "prompts.jsonl", lines)
    with pytest.raises(BatchInputError) as err:
        load_prompts(path)
    assert err.value.line == line and err.value.field == field
    assert str(path) in str(err.value) and f"line {line}" in str(err.value)
    if field:
        assert f"field '{field}'" in str(err.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(BatchInputError, match="file not found"):
        load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(BatchInputError, match="no prompts"):
        load_prompts(write(tmp_path / "p.jsonl", [""]))


def test_batch_listing_and_open_state(tmp_path):
    write(tmp_path / "b1" / "prompts.jsonl", ['{"prompt": "x"}'])
    write(tmp_path / "b2" / "prompts.jsonl", ['{"prompt": "x"}'])
    (tmp_path / "b2" / "batch.json").write_text('{"closed": true}')
    write(tmp_path / "b3" / "prompts.jsonl", ['{"prompt": "x"}'])
    (tmp_path / "b3" / "batch.json").write_text("{broken")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "bad name!" / "prompts.jsonl", ['{"prompt": "x"}'])
    assert list_batches(tmp_path) == ["b1", "b2", "b3"]
    assert open_batches(tmp_path) == ["b1", "b3"]  # a broken config still runs, and fails loudly


def test_batch_config_errors_name_the_field(tmp_path):
    (tmp_path / "batch.json").write_text('{"label_map": {"1": "A>>>B"}}')
    with pytest.raises(BatchInputError, match=r"field 'label_map.1'"):
        load_batch_config(tmp_path)
    (tmp_path / "batch.json").write_text('{"colsed": true}')
    with pytest.raises(BatchInputError, match="field 'colsed'"):
        load_batch_config(tmp_path)
    (tmp_path / "batch.json").write_text('{"human_budget": -1}')
    with pytest.raises(BatchInputError, match="field 'human_budget'"):
        load_batch_config(tmp_path)
    (tmp_path / "batch.json").write_text('{"label_map": {"1": "A>B"}, "human_budget": 10}')
    cfg = load_batch_config(tmp_path)
    assert cfg.label_map == {"1": "A>B"} and cfg.human_budget == 10 and not cfg.closed
