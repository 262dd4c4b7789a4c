"""The pipeline benchmark, and the promise behind the speed work: on the recorded 20K-pair batch the
pipeline makes the same rows in every table and the same final labels as the code before it
(recorded at da8c0f1 in fixtures/). The run goes through the benchmark itself (`prefpipe run` in a
process of its own, in a fresh data folder), so its figures are checked too. No time is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prefpipe.bench import pipeline, synthetic

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = json.loads((FIXTURES / "pipeline_20k.json").read_text(encoding="utf-8"))


def test_the_20k_batch_makes_the_recorded_rows_and_final_labels(tmp_path):
    shape = synthetic.BatchShape(RECORDED["pairs"], **RECORDED["shape"])
    result = pipeline.measure(shape, tmp_path, RECORDED["seed"])

    import hashlib

    batch = tmp_path / "data" / "batches" / pipeline.BATCH
    digests = {name: hashlib.sha256((batch / name).read_bytes()).hexdigest() for name in RECORDED["input_sha256"]}
    assert digests == RECORDED["input_sha256"], "the synthetic batch is not the recorded one: the generator changed"
    assert result["rows"] == RECORDED["row_counts"]
    got = pipeline.final_labels(tmp_path / "data")
    want = pd.read_csv(FIXTURES / "pipeline_20k_final_labels.csv.gz", dtype={"label": "string"}, keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.astype(got.dtypes.to_dict()), check_exact=False, rtol=1e-6)
    steps = result["steps"]
    assert {"prompts", "response_pairs", "ai_labels", "final_labels", "published_dataset"} <= set(steps)
    assert all(s["wall_s"] >= 0 and s["peak_rss_bytes"] > 0 for s in steps.values())
    assert result["floor"]["wall_s"] > 0 and result["peak_rss_bytes"] >= max(s["peak_rss_bytes"] for s in steps.values())
    text = pipeline.report({"machine": {}, "shape": RECORDED["shape"], "sizes": [result]})
    assert "| prompts |" in text and "wall / floor" in text


def test_a_batch_shape_is_honoured(tmp_path):
    synthetic.write_batch(tmp_path, "b", synthetic.BatchShape(1000, human_share=0.25, words=20, annotators=30, labels_per_pair=3), seed=3)
    labels = [json.loads(line) for line in (tmp_path / "annotations.jsonl").read_text(encoding="utf-8").splitlines()]
    per_pair = pd.DataFrame(labels).groupby("pair_id")["annotator_id"].agg(["size", "nunique"])
    assert len(per_pair) == 250 and (per_pair["size"] == 3).all() and (per_pair["nunique"] == 3).all()
    prompts = [json.loads(line) for line in (tmp_path / "prompts.jsonl").read_text(encoding="utf-8").splitlines()]
    words = [len(r["text"].split()) for p in prompts for r in p["responses"]]
    assert len(prompts) == 1000 and 15 < sum(words) / len(words) < 30


def test_a_bad_line_deep_in_prompts_fails_naming_it_and_keeps_the_rows(tmp_path):
    shape = synthetic.BatchShape(1200, human_share=0.3, words=10, annotators=20)
    result = pipeline.measure(shape, tmp_path, seed=5)
    faults = pipeline.bad_input(tmp_path, line=1100)
    assert [f["fault"] for f in faults] == list(pipeline.FAULTS)
    for fault in faults:
        assert fault["named"] and fault["rows_unchanged"], fault
        assert "prompts.jsonl, line 1100" in fault["message"]
    assert pipeline.row_counts(tmp_path / "data") == result["rows"]
    assert (tmp_path / "data" / "batches" / pipeline.BATCH / "prompts.jsonl").read_bytes().count(b"\n") == 1200  # the good file is back
