"""The shipped demo batch is exactly what the converter makes from PandaLM's published files."""

import filecmp
import json

from prefpipe.core import demo_batch
from prefpipe_tests.conftest import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "data" / "batches" / "demo"


def test_shipped_demo_batch_is_reproducible(shared_data, tmp_path):
    counts = demo_batch.build(shared_data / "pandalm", tmp_path)
    assert counts == {"prompts": 999, "verdicts": 999, "annotations": 2997}
    for name in ("prompts.jsonl", "ai_labels.jsonl", "annotations.jsonl", "batch.json", "LICENSE.apache-2.0.txt", "PROVENANCE.md"):
        assert filecmp.cmp(SHIPPED / name, tmp_path / name, shallow=False), name


def test_shipped_demo_batch_counts():
    verdicts = [json.loads(line) for line in (SHIPPED / "ai_labels.jsonl").read_text().splitlines()]
    assert len(verdicts) == 999
    assert sum(v["verdict"] == "garbage" for v in verdicts) == 25
    assert (SHIPPED / "LICENSE.apache-2.0.txt").is_file()
