"""A batch whose people-routed pairs all have their imported labels, with a gold file: human_queue
has no task to load but still loads the gold (issue item 2: it used to fail on the empty frame)."""

from __future__ import annotations

import dagster as dg

from prefpipe.annotate.store import AnnotationStore
from prefpipe.cli.pipeline import step_failures
from prefpipe.core import settings
from prefpipe.core.warehouse import read_table
from prefpipe_tests.defs.conftest import make_batch, materialize, write_jsonl

GOLD = [
    {"pair_id": f"gold{i}", "prompt": f"Gold question {i}", "response_a": f"A right answer {i}.",
     "response_b": f"A wrong answer {i}.", "label": "A>B"}
    for i in range(3)
]


def test_a_fully_imported_batch_with_gold_loads_its_gold(project_data):
    folder = make_batch(project_data, "imported")  # 3 imported human labels on every pair
    write_jsonl(folder / "gold.jsonl", GOLD)
    result = materialize("imported", dg.DagsterInstance.ephemeral())
    assert result.success, step_failures(result)
    queue = read_table("human_queue", batch_id="imported")
    assert not queue["enqueued"].any()  # every pair already has what it needs
    with AnnotationStore(settings.annotation_store_path()) as store:
        gold = store.gold_items()
        assert store.batch_status("imported")["items"] == 0
    assert sorted(gold["pair_id"]) == ["gold0", "gold1", "gold2"] and set(gold["batch_id"]) == {"imported"}
    assert set(gold["gold_label"]) == {"A>B"} and set(gold["scope"]) == {"batch"}  # served beside this batch only
