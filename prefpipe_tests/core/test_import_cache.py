"""Imported labels are parsed once per file content: a second read of the same bytes under the same
settings comes from data/cache/imports/, an edit or another label_map parses again, a torn entry is
parsed again, files outside data/batches/ are never cached, and the pair check still names the line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from prefpipe.core import import_cache, ingest
from prefpipe.core.batch_config import BatchConfig
from prefpipe.core.input_errors import BatchInputError

CFG = BatchConfig(label_map={"1": "A>B", "2": "B>A"}, external_judge="ext", imported_guideline_version="v0")


def write(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def batch(data_dir):
    folder = data_dir / "batches" / "b1"
    write(folder / "annotations.jsonl", [{"pair_id": f"q{i}:0", "annotator_id": f"a{j}", "label": 1 + (i + j) % 2} for i in range(5) for j in range(3)])
    write(folder / "ai_labels.jsonl", [{"pair_id": f"q{i}:0", "verdict": str(1 + i % 2), "confidence": 0.5} for i in range(5)])
    return folder


def counting(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = ingest._human_in_bulk

    def spy(*args, **kwargs):
        calls.append("parse")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "_human_in_bulk", spy)
    return calls


def test_the_same_bytes_are_parsed_once_and_give_the_same_frame(batch, monkeypatch):
    calls = counting(monkeypatch)
    first = ingest.import_human_annotations([batch / "annotations.jsonl"], CFG)
    second = ingest.import_human_annotations([batch / "annotations.jsonl"], CFG)
    assert calls == ["parse"]
    pd.testing.assert_frame_equal(first, second)
    assert len(list(import_cache.cache_dir().glob("annotations-*.arrow"))) == 1


def test_an_edit_or_other_settings_parse_again_and_keep_one_entry(batch, monkeypatch):
    calls = counting(monkeypatch)
    path = batch / "annotations.jsonl"
    ingest.import_human_annotations([path], CFG)
    write(path, [{"pair_id": "q0:0", "annotator_id": "a0", "label": 2}])
    edited = ingest.import_human_annotations([path], CFG)
    assert calls == ["parse", "parse"] and edited["label"].tolist() == ["B>A"]
    swapped = ingest.import_human_annotations([path], CFG.model_copy(update={"label_map": {"1": "B>A", "2": "A>B"}}))
    assert calls == ["parse"] * 3 and swapped["label"].tolist() == ["A>B"]
    assert len(list(import_cache.cache_dir().glob("annotations-*.arrow"))) == 1


def test_a_torn_entry_is_parsed_again(batch, monkeypatch):
    calls = counting(monkeypatch)
    ingest.import_human_annotations([batch / "annotations.jsonl"], CFG)
    (entry,) = import_cache.cache_dir().glob("annotations-*.arrow")
    entry.write_bytes(entry.read_bytes()[:40])
    again = ingest.import_human_annotations([batch / "annotations.jsonl"], CFG)
    assert calls == ["parse", "parse"] and len(again) == 15


def test_files_outside_the_batches_folder_are_not_cached(tmp_path, data_dir, monkeypatch):
    calls = counting(monkeypatch)
    path = tmp_path / "elsewhere" / "annotations.jsonl"
    write(path, [{"pair_id": "q0:0", "annotator_id": "a0", "label": 1}])
    ingest.import_human_annotations([path], CFG)
    ingest.import_human_annotations([path], CFG)
    assert calls == ["parse", "parse"] and not import_cache.cache_dir().exists()


@pytest.mark.parametrize("known", [{"q0:0", "q1:0", "q2:0", "q3:0"}, pd.Series(["q0:0", "q1:0", "q2:0", "q3:0"], dtype="string[pyarrow]")])
def test_an_unknown_pair_names_its_line_cached_or_not(batch, known):
    for _ in range(2):  # the second read comes from the cache
        with pytest.raises(BatchInputError) as err:
            ingest.import_ai_labels(batch / "ai_labels.jsonl", CFG, guideline_version="g", known_pairs=known)
        assert "line 5" in str(err.value) and "'q4:0'" in str(err.value) and "pair_id" in str(err.value)
    assert len(ingest.import_ai_labels(batch / "ai_labels.jsonl", CFG, guideline_version="g", known_pairs=[*known, "q4:0"])) == 5
