"""`queue add` input files: every line checked, errors name file, line and field."""

from __future__ import annotations

import json

import pytest

from prefpipe.core.pairs_file import PairsFileError, read_pairs

GOOD = {"pair_id": "p1", "prompt": "Q", "response_a": "a", "response_b": "b"}


def write(path, *objs, raw: str = ""):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs) + raw, encoding="utf-8")
    return path


def test_reads_tasks_with_defaults_and_gold_with_labels(tmp_path):
    tasks = read_pairs(write(tmp_path / "p.jsonl", GOOD, {**GOOD, "pair_id": "p2", "route": "expert", "priority": 2}))
    assert tasks.to_dict("records")[1] == {**GOOD, "pair_id": "p2", "route": "expert", "priority": 2.0}
    assert tasks["route"][0] == "human" and tasks["priority"][0] == 0.0
    gold = read_pairs(write(tmp_path / "g.jsonl", {**GOOD, "label": "B>>A"}), gold=True)
    assert list(gold.columns) == ["pair_id", "prompt", "response_a", "response_b", "label"]


@pytest.mark.parametrize(
    ("lines", "gold", "message"),
    [
        ([GOOD, {**GOOD, "pair_id": "p2", "response_b": None}], False, r"p.jsonl:2: field 'response_b'"),
        ([GOOD, GOOD], False, r"p.jsonl:2: field 'pair_id': 'p1' already on line 1"),
        ([{**GOOD, "route": "accepted"}], False, r"p.jsonl:1: field 'route'"),
        ([{**GOOD, "priority": "high"}], False, r"p.jsonl:1: field 'priority'"),
        ([GOOD], True, r"p.jsonl:1: field 'label': None"),
        ([{**GOOD, "label": "A>C"}], True, r"p.jsonl:1: field 'label': 'A>C'"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, lines, gold, message):
    with pytest.raises(PairsFileError, match=message):
        read_pairs(write(tmp_path / "p.jsonl", *lines), gold=gold)


def test_broken_json_and_empty_files(tmp_path):
    with pytest.raises(PairsFileError, match=r"p.jsonl:2: not valid JSON"):
        read_pairs(write(tmp_path / "p.jsonl", GOOD, raw="{oops\n"))
    with pytest.raises(PairsFileError, match="no pairs"):
        read_pairs(write(tmp_path / "p.jsonl", raw="\n"))
    with pytest.raises(PairsFileError, match="no such file"):
        read_pairs(tmp_path / "missing.jsonl")
