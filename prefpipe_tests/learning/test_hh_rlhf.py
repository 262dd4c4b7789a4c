from __future__ import annotations

import gzip
import json

import pytest

from prefpipe.learning import hh_rlhf


def test_split_keeps_the_shared_prefix_up_to_the_last_assistant_marker():
    prompt = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: what is 2+2?\n\nAssistant:"
    got = hh_rlhf.split_transcripts(prompt + " It is 4.", prompt + " It is five, I think.")
    assert got == (prompt, "It is 4.", "It is five, I think.")
    # responses that begin alike are not cut inside the final turn
    got = hh_rlhf.split_transcripts(prompt + " It is 4.", prompt + " It is 5.")
    assert got == (prompt, "It is 4.", "It is 5.")
    assert hh_rlhf.split_transcripts(prompt + " x", prompt + " x") is None


def test_load_counts_identical_rows_and_names_the_bad_line(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    good = {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}
    same = {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: a"}
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(good) + "\n" + json.dumps(same) + "\n")
    loaded = hh_rlhf.load_hh_pairs(path)
    assert len(loaded.pairs) == 1 and loaded.dropped_identical == 1
    assert loaded.pairs.iloc[0].tolist() == [1, "\n\nHuman: q\n\nAssistant:", "a", "b"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n{\"chosen\": \"x\"}\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        hh_rlhf.load_hh_pairs(bad)


def test_helpful_base_loads(shared_data):
    loaded = hh_rlhf.load_hh_pairs(shared_data / "hh_rlhf" / "helpful-base" / "test.jsonl.gz")
    assert len(loaded.pairs) + loaded.dropped_identical == 2354
    assert loaded.pairs["prompt"].str.endswith("\n\nAssistant:").mean() > 0.99
