"""The batch JSONL readers: bytes that are not text name their file and line, Windows files are
read, and the bulk reader returns exactly what the line-by-line reader returns (or hands over)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pandas as pd
import pytest

from prefpipe.core import ingest, jsonl, prompts_file
from prefpipe.core.batch_config import BatchConfig
from prefpipe.core.batches import BatchInputError, load_prompts
from prefpipe.core.ingest import import_ai_labels, import_human_annotations
from prefpipe.core.jsonl import LineByLine
from prefpipe.core.pairs_file import PairsFileError, read_pairs

CFG = BatchConfig(label_map={"1": "A>B", "2": "B>A", "0": "A=B", "Tie": "A=B"}, external_judge="ext", imported_guideline_version="v0")
PROMPT = {"id": "q1", "prompt": "Say hi", "responses": [{"model": "m1", "text": "hi"}, {"model": "m2", "text": "hello"}]}
VERDICT = {"pair_id": "q1:0", "verdict": "1", "reasoning": "first"}
LABEL = {"pair_id": "q1:0", "annotator_id": "ann1", "label": 2, "duration_s": 3.5}
GOLD = {"pair_id": "g1", "prompt": "Q", "response_a": "a", "response_b": "b", "label": "A>B"}


def lines(*objs) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


READERS = {
    "prompts": (PROMPT, lambda p: load_prompts(p)),
    "ai_labels": (VERDICT, lambda p: import_ai_labels(p, CFG, guideline_version="g")),
    "annotations": (LABEL, lambda p: import_human_annotations([p], CFG)),
    "gold": (GOLD, lambda p: read_pairs(p, gold=True)),
}


def located(reader: str, path: Path) -> Exception:
    good, read = READERS[reader]
    with pytest.raises((BatchInputError, PairsFileError)) as err:
        read(path)
    assert str(path) in str(err.value) and err.value.line is not None
    return err.value


@pytest.mark.parametrize("reader", READERS)
def test_a_byte_that_is_not_utf8_names_the_file_and_line(tmp_path, reader):
    good, _ = READERS[reader]
    second = dict(good, pair_id="x2", id="x2", annotator_id="ann2")
    bad = json.dumps(dict(good, pair_id="x3", id="x3", annotator_id="ann3")).encode().replace(b'"x3"', b'"x\xff3"')
    path = tmp_path / f"{reader}.jsonl"
    path.write_bytes(lines(good, second, bad, good))
    err = located(reader, path)
    assert err.line == 3 and "not valid UTF-8 (byte 0xff" in str(err)


@pytest.mark.parametrize(
    ("reader", "row", "field"),
    [
        ("prompts", dict(PROMPT, responses=[PROMPT["responses"][0], {"model": "m2", "text": "LONE"}]), "responses[1].text"),
        ("ai_labels", dict(VERDICT, reasoning="LONE"), "reasoning"),
        ("annotations", dict(LABEL, dimensions={"clarity": "LONE"}), "dimensions.clarity"),
        ("gold", dict(GOLD, prompt="LONE"), "prompt"),
    ],
)
def test_a_lone_surrogate_names_the_file_line_and_field(tmp_path, reader, row, field):
    path = tmp_path / f"{reader}.jsonl"
    path.write_bytes(lines(READERS[reader][0], json.dumps(row).replace("LONE", "half \\ud800 of a pair").encode()))
    err = located(reader, path)
    assert err.line == 2 and err.field == field and "lone surrogate" in str(err)


@pytest.mark.parametrize("reader", READERS)
def test_a_windows_file_with_a_bom_and_crlf_reads_like_a_plain_one(tmp_path, reader):
    good, read = READERS[reader]
    other = dict(good, pair_id="x2", id="x2", annotator_id="ann2")
    plain, windows = tmp_path / "plain.jsonl", tmp_path / f"{reader}.jsonl"
    plain.write_bytes(lines(good, other))
    windows.write_bytes(b"\xef\xbb\xbf" + lines(good, other).replace(b"\n", b"\r\n"))
    expected = read(plain)
    if "source" in expected:
        expected["source"] = expected["source"].str.replace(plain.name, windows.name)
    pd.testing.assert_frame_equal(read(windows), expected)


@pytest.mark.parametrize("reader", READERS)
def test_a_bom_in_the_middle_names_its_line(tmp_path, reader):
    good, _ = READERS[reader]
    path = tmp_path / f"{reader}.jsonl"
    path.write_bytes(lines(good, b"\xef\xbb\xbf" + json.dumps(dict(good, pair_id="x2", id="x2", annotator_id="ann2")).encode()))
    err = located(reader, path)
    assert err.line == 2 and "byte order mark" in str(err)


def test_a_bad_line_deep_in_a_large_file_is_found(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [json.dumps(dict(PROMPT, id=f"q{i}")).encode() for i in range(30_000)]
    path.write_bytes(lines(*rows[:27_000], rows[27_000].replace(b"Say hi", b"Say h\xefi"), *rows[27_001:]))
    with pytest.raises(BatchInputError, match=r"line 27001: not valid UTF-8"):
        load_prompts(path)
    path.write_bytes(lines(*rows[:27_000], rows[27_000].replace(b'"text": "hi"', b'"text": 7'), *rows[27_001:]))
    with pytest.raises(BatchInputError, match=r"line 27001, field 'responses\[0\].text'"):
        load_prompts(path)


# -- bulk and line by line agree ---------------------------------------------------------------
CONTROL = "".join(chr(c) for c in range(0x80)) + "é€\u2028\u2029\U0001f600\ufeff\u0085"
PROMPT_FILES = {
    "mixed ids and blank lines": [PROMPT, "", {"prompt": "Count to 3"}, "   ", {"id": 7, "prompt": "Seven"}, {"id": -5, "prompt": "x", "responses": []}],
    "control characters": [{"id": "c", "prompt": CONTROL, "responses": [{"model": CONTROL, "text": CONTROL}, {"text": ""}]}],
    "escapes": ['{"id": "e", "prompt": "\\u00e9 \\/ \\\\u000B", "responses": [{"text": "a\\nb\\t\\"q\\""}]}'],
    "extra keys": [{"id": "a", "prompt": "x", "PROMPT": "y", "meta": {"k": [1, None]}, "responses": [{"text": "t", "score": None}]}],
    "a null id": [{"id": None, "prompt": "x"}],
    "NaN in an extra key": ['{"id": "a", "prompt": "x", "z": NaN}'],
    "emoji escapes": ['{"id": "a", "prompt": "x \\ud83d\\ude00"}'],
    "a huge integer id": [{"id": 123456789012345678901234567890, "prompt": "x"}],
    "a duplicate key": ['{"id": "a", "prompt": "x", "prompt": "y"}'],
    "errors": [{"id": " ", "prompt": "x"}],
    "a blank prompt": [{"id": "a", "prompt": "\u3000\x1c"}],
    "a float id": [{"id": 1.0, "prompt": "x"}],
    "a null responses": [{"id": "a", "prompt": "x", "responses": None}],
    "a null model": [{"id": "a", "prompt": "x", "responses": [{"model": None, "text": "t"}]}],
    "an empty model": [{"id": "a", "prompt": "x", "responses": [{"model": "", "text": "t"}]}],
    "a trailing comma": ['{"id": "a", "prompt": "x", "responses": [{"text": "t"},]}'],
    "nan": ['{"id": "a", "prompt": "x", "z": nan}'],
    "a form feed": ['{"id": "a", "prompt": "x"}\f'],
    "a lone carriage return": ['{"id": "a", "prompt": "x"}\r{"id": "b", "prompt": "y"}'],
    "duplicate ids": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}],
}
AI_FILES = {
    "plain": [VERDICT, {"pair_id": "p2:0", "verdict": "garbage"}, {"pair_id": "p3:0", "verdict": "B>>A", "judge": "other", "confidence": 0.9}],
    "integers and defaults": [{"pair_id": 5, "verdict": 2, "confidence": 1}, {"pair_id": "q1:0", "verdict": " A>B ", "judge": "", "guideline_version": "g9"}],
    "a null verdict": [{"pair_id": "q1:0", "verdict": None, "reasoning": None, "confidence": None}],
    "text": [{"pair_id": "q1:0", "verdict": "é\u2028", "reasoning": "a\nb\t\"q\" \\ /"}],
    "a missing verdict": [{"pair_id": "q1:0"}],
    "a boolean confidence": [dict(VERDICT, confidence=True)],
    "a confidence of 2": [dict(VERDICT, confidence=2)],
    "a float verdict": [dict(VERDICT, verdict=1.0)],
    "an object reasoning": [dict(VERDICT, reasoning={"a": 1})],
    "a second verdict": [VERDICT, dict(VERDICT, verdict="2")],
    "two judges": [VERDICT, dict(VERDICT, judge="b")],
}
HUMAN_FILES = {
    "plain": [LABEL, {"pair_id": "q1:0", "annotator_id": "ann2", "label": "B>>A", "dimensions": {"b": 4, "a": [1, 2.5, "x"]}, "role": "expert"}],
    "integers": [{"pair_id": 3, "annotator_id": 7, "label": "Tie", "duration_s": 0, "created_at": "2024-01-01T00:00:00Z", "guideline_version": "g"}],
    "nested dimensions": [dict(LABEL, dimensions={"z": {"b": 1, "a": None}, "é": "\u2028"})],
    "just under a day": [dict(LABEL, duration_s=86_399.5)],
    "a NaN duration": ['{"pair_id": "q1:0", "annotator_id": "a", "label": 1, "duration_s": NaN}'],
    "a day": [dict(LABEL, duration_s=86_400)],
    "a null role": [dict(LABEL, role=None)],
    "null dimensions": [dict(LABEL, dimensions=None)],
    "a null label": [dict(LABEL, label=None)],
    "an unknown label": [dict(LABEL, label="maybe")],
    "an integer created_at": [dict(LABEL, created_at=5)],
    "a second label": [LABEL, dict(LABEL, label=1)],
}


def agree(bulk, line_by_line) -> None:
    """The bulk reader hands over (LineByLine) or returns what the line-by-line reader returns;
    it never accepts what the line-by-line reader rejects."""
    try:
        expected = line_by_line()
    except BatchInputError:
        expected = None
    try:
        got = bulk()
    except LineByLine:
        return
    assert expected is not None, "the bulk reader accepted a file the line-by-line reader rejects"
    pd.testing.assert_frame_equal(got, expected)


def write(path: Path, rows: list) -> Path:
    path.write_bytes(b"".join((r.encode() if isinstance(r, str) else json.dumps(r).encode()) + b"\n" for r in rows))
    return path


@pytest.mark.parametrize("name", PROMPT_FILES)
def test_prompts_in_bulk_agree_with_line_by_line(tmp_path, name):
    path = write(tmp_path / "prompts.jsonl", PROMPT_FILES[name])

    def counted(reader):  # the counts each reader returns are the candidates in its frame's JSON
        frame, counts = reader(path)
        found = pc.count_substring(pa.array(frame["candidates"].astype("string[pyarrow]")), prompts_file.CANDIDATE_START)
        np.testing.assert_array_equal(counts, found.to_numpy(zero_copy_only=False))
        return frame

    agree(lambda: counted(prompts_file._in_bulk), lambda: counted(prompts_file._line_by_line))


@pytest.mark.parametrize("name", AI_FILES)
def test_verdicts_in_bulk_agree_with_line_by_line(tmp_path, name):
    path = write(tmp_path / "ai_labels.jsonl", AI_FILES[name])
    for known in (None, {"q1:0", "p2:0", "p3:0", "5"}, {"q1:0"}):
        agree(lambda: ingest._ai_labels_in_bulk(path, CFG, known, None), lambda: ingest._ai_labels_line_by_line(path, CFG, known, None))


@pytest.mark.parametrize("name", HUMAN_FILES)
def test_annotations_in_bulk_agree_with_line_by_line(tmp_path, name):
    files = [write(tmp_path / "annotations.jsonl", HUMAN_FILES[name]), write(tmp_path / "more.jsonl", [dict(LABEL, annotator_id="ann9")])]
    for known in (None, {"q1:0", "3"}):
        agree(lambda: ingest._human_in_bulk(files, CFG, known, None), lambda: ingest._human_line_by_line(files, CFG, known, None))


def test_the_common_files_are_read_in_bulk(tmp_path, monkeypatch):
    """What prefpipe itself and most tools write never needs the slow reader."""
    def refuse(*args):
        raise AssertionError("read line by line")

    monkeypatch.setattr(prompts_file, "_line_by_line", refuse)
    monkeypatch.setattr(ingest, "_ai_labels_line_by_line", refuse)
    monkeypatch.setattr(ingest, "_human_line_by_line", refuse)
    prompts = load_prompts(write(tmp_path / "prompts.jsonl", PROMPT_FILES["mixed ids and blank lines"] + [{"prompt": "Résumé, \"quoted\""}]))
    assert prompts["source_line"].tolist() == [1, 3, 5, 6, 7]
    verdicts = import_ai_labels(write(tmp_path / "ai.jsonl", AI_FILES["plain"] + [{"pair_id": "p4:0", "verdict": None}]), CFG, guideline_version="g")
    assert verdicts["status"].tolist() == ["ok", "unparsed", "ok", "unparsed"]
    assert len(import_human_annotations([write(tmp_path / "h.jsonl", HUMAN_FILES["plain"] + HUMAN_FILES["integers"])], CFG)) == 3


@pytest.mark.parametrize("chunk", [7, 64, 1 << 24])
def test_the_gated_scan_finds_what_the_full_scan_finds(tmp_path, monkeypatch, chunk):
    """The cheap RE2 gates only skip a block's searches when they would find nothing: every blank
    line and every line the parsers may read apart is still numbered and marked, at any block size."""
    tricky = [row for rows in (*PROMPT_FILES.values(), *AI_FILES.values(), *HUMAN_FILES.values()) for row in rows]
    tricky += ['{"a": -Infinity}', '{"a": [1, - iNf]}', '{"a": {"b": null }}', '{"a": [1 ,\t]}', "\t", '{"info": "nan, inf"}']
    plain = [dict(PROMPT, id=f"q{i}") for i in range(len(tricky))]
    rows = [r for pair in zip(plain, tricky) for r in pair] + plain
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join((r.encode() if isinstance(r, str) else json.dumps(r).encode()) + b"\n" for r in rows if "\r" not in str(r)) + b"  ")
    monkeypatch.setattr(jsonl, "_CHUNK", chunk)
    gated = jsonl._scan(path)
    monkeypatch.setattr(jsonl, "_gates", lambda data: (True, True))
    full = jsonl._scan(path)
    np.testing.assert_array_equal(gated[0], full[0])
    assert gated[1] == full[1] and len(full[1]) > 10
