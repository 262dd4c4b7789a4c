"""Issue 5's end to end: the pipeline loads pairs into the annotation app's queue, people label
them over the real HTTP API, and the next materialization carries their labels into final labels
and the agreement report. Also `prefpipe export --format pairs` + `prefpipe queue add`."""

from __future__ import annotations

import itertools
import json

import dagster as dg
import httpx

from prefpipe.core import settings
from prefpipe.annotate.app import create_app
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import AnnotationStore
from prefpipe.cli import main as prefpipe
from prefpipe.cli.pipeline import step_failures
from prefpipe.core.warehouse import read_table
from prefpipe_tests.defs.conftest import make_batch, materialize


def label_everything(url: str, token: str, choose) -> int:
    """Answer every task the server gives this annotator; returns how many."""
    answered = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while True:
            task = http.get("/api/tasks/next")
            if task.status_code == 204:
                return answered
            task.raise_for_status()
            body = task.json()
            reply = http.post(f"/api/tasks/{body['task_id']}/annotations", json={"label": choose(body), "dimensions": {}})
            assert reply.status_code in (200, 201), reply.text
            answered += 1


def prefer_longer(task: dict) -> str:
    return "A>B" if len(task["response_a"]) > len(task["response_b"]) else "B>A"


def test_people_label_in_the_app_and_the_next_run_uses_their_labels(project_data):
    folder = make_batch(project_data, "fresh")
    (folder / "annotations.jsonl").unlink()  # nobody has labelled this batch yet
    instance = dg.DagsterInstance.ephemeral()
    first = materialize("fresh", instance)
    assert first.success, step_failures(first)
    queue = read_table("human_queue", batch_id="fresh")
    assert queue["enqueued"].all() and (queue["labels_wanted"] == 3).all()  # no confidence: people decide
    assert read_table("final_labels", batch_id="fresh").empty  # nothing invented meanwhile

    ticks = itertools.count(1_800_000_000, 20)  # each store event 20 s after the last: careful, not careless, people
    with AnnotationStore(settings.annotation_store_path(), clock=lambda: float(next(ticks))) as store:
        tokens = [store.add_annotator(f"person{k}") for k in range(3)]
        with ServerThread(create_app(store)) as url:
            answered = [label_everything(url, token, prefer_longer) for token in tokens]
    assert sum(answered) >= 18  # 6 pairs x 3 people (plus any hidden gold)

    second = materialize("fresh", instance)
    assert second.success, step_failures(second)
    people = read_table("human_annotations", batch_id="fresh")
    app_rows = people[people["source"] == "app"]
    assert len(app_rows[~app_rows["is_gold"]]) == 18 and set(app_rows["annotator_id"]) == {"person0", "person1", "person2"}
    assert (app_rows["duration_s"] >= 20).all()  # measured by the server
    final = read_table("final_labels", batch_id="fresh")
    assert len(final) == 6 and (final["source"] == "human").all()
    assert (final["label"] == "B>A").all()  # response B is the longer one in every pair of make_batch
    report = read_table("agreement_report", batch_id="fresh").set_index("metric")
    assert report.loc["fleiss_kappa", "value"] != report.loc["fleiss_kappa", "value"] or report.loc["raw_agreement", "value"] == 1.0


def test_export_pairs_then_queue_add(project_data, tmp_path, capsys):
    instance = dg.DagsterInstance.ephemeral()
    assert materialize("mini", instance).success
    out = tmp_path / "mini.pairs.jsonl"
    assert prefpipe(["export", "--batch", "mini", "--format", "pairs", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["pair_id"] for r in rows] == [f"q{i}:0" for i in range(6)] and set(rows[0]) == {"pair_id", "prompt", "response_a", "response_b"}
    assert prefpipe(["queue", "add", str(out), "--batch", "mini", "--per-item", "1"]) == 0
    with AnnotationStore(settings.annotation_store_path()) as store:
        assert store.batch_status("mini")["items"] == 6
