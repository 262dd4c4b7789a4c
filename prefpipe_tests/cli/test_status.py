"""Issue 15's whole path, from the command line as a user takes it: a batch with no judge and two
labels per pair runs green with every pair waiting; people label in the app (two on one pair, one
on another); the next run makes exactly the first pair final and publishes one row; `prefpipe
status` shows each step. And with no endpoint and no judge setting, one message, no traceback."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import shutil
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from prefpipe.annotate.app import create_app
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import AnnotationStore
from prefpipe.cli import main as prefpipe
from prefpipe.core import settings
from prefpipe.core.warehouse import read_table

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def batch(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project: the shipped guidelines and a batch `mine` of four prompts, two responses each."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data_dir / "guidelines")
    folder = data_dir / "batches" / "mine"
    folder.mkdir(parents=True)
    prompts = [{"id": f"p{i}", "prompt": f"Explain topic {i}.",
                "responses": [{"model": "x", "text": f"Short answer {i}."}, {"model": "y", "text": f"A longer, different answer about {i}."}]}
               for i in range(4)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return folder


def status(capsys) -> dict:
    capsys.readouterr()
    assert prefpipe(["status", "--batch", "mine", "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)["batches"]
    return only


def answer(url: str, token: str, *, prompt: str | None = None) -> str:
    """One answer from this annotator: to the pair of `prompt` (skipping the tasks served before
    it), else to the first task served; the prompt answered (tasks do not show pair ids)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while True:
            task = http.get("/api/tasks/next")
            assert task.status_code == 200, task.text
            body = task.json()
            if prompt is None or body["prompt"] == prompt:
                longer = "A>B" if len(body["response_a"]) > len(body["response_b"]) else "B>A"  # they agree, whatever side they see it on
                reply = http.post(f"/api/tasks/{body['task_id']}/annotations", json={"label": longer, "dimensions": {}})
                assert reply.status_code == 201, reply.text
                return body["prompt"]
            assert http.post(f"/api/tasks/{body['task_id']}/skip", json={"reason": "testing another pair"}).status_code == 200


def test_a_batch_waits_for_people_then_publishes_what_is_complete(batch, capsys):
    (batch / "batch.json").write_text(json.dumps({"judge": "none", "labels_per_pair": 2}))
    assert prefpipe(["run", "--batch", "mine"]) == 0  # green while everything waits
    first = status(capsys)
    assert first["last_run"]["status"] == "SUCCESS" and not first["stale"]
    w = first["warehouse"]
    assert w["pairs"] == 4 and w["routes"]["human"] == 4 and w["final_labels"] == 0 and w["accepted_ai"] == 0
    assert w["waiting"] == [{"route": "human", "labels_wanted": 2, "labels_received": 0, "pairs": 4}]
    assert first["app_queue"]["labels_wanted"] == 8 and first["app_queue"]["answered"] == 0
    assert first["dataset_rows"] == 0 and first["published_rows"] is None
    assert not (settings.exports_dir() / "mine" / "train.parquet").exists()  # nothing complete, nothing published

    ticks = itertools.count(1_800_000_000, 20)  # each store event 20 s after the last: people who read, not a click-through
    with AnnotationStore(settings.annotation_store_path(), clock=lambda: float(next(ticks))) as store:
        ann, bea, cal = (store.add_annotator(name) for name in ("ann", "bea", "cal"))
        with ServerThread(create_app(store)) as url:
            both = answer(url, ann)
            assert answer(url, bea, prompt=both) == both
            one = answer(url, cal)
    assert one != both
    live = status(capsys)["app_queue"]
    assert live["answered"] == 3 and live["complete"] == 1 and live["waiting"] == 3

    assert prefpipe(["run", "--batch", "mine"]) == 0
    pairs = read_table("response_pairs", batch_id="mine").set_index("prompt")["pair_id"]
    final = read_table("final_labels", batch_id="mine")
    assert list(final["pair_id"]) == [pairs[both]] and list(final["n_labels"]) == [2] and list(final["source"]) == ["human"]
    assert len(read_table("preference_dataset", batch_id="mine")) == 1
    assert pq.read_table(settings.exports_dir() / "mine" / "train.parquet").num_rows == 1
    after = status(capsys)
    w = after["warehouse"]
    assert w["final_labels"] == 1 and w["final"]["human"] == 1 and w["pairs_waiting"] == 3
    assert sorted((x["labels_received"], x["pairs"]) for x in w["waiting"]) == [(0, 2), (1, 1)]
    assert after["dataset_rows"] == 1 and after["published_rows"] == 1
    capsys.readouterr()
    assert prefpipe(["status"]) == 0
    printed = capsys.readouterr().out
    assert "final labels       1 (ai 0, human 1, expert 0)" in printed
    assert "waiting for people 3 pair(s): 1 with 1 of 2, 2 with 0 of 2 label(s)" in printed


def test_no_endpoint_and_no_judge_setting_is_one_message(batch, data_dir, tmp_path):
    """Its own process, as a user runs it (and as Dagster builds the job: once per process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(PREFPIPE_DATA_DIR=str(data_dir), DAGSTER_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "prefpipe.cli", "run", "--batch", "mine"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (failure,) = [line for line in done.stderr.splitlines() if "failed:" in line]
    assert failure.startswith("  ai_labels failed:") and "OPENAI_BASE_URL" in failure
    assert '"judge": "none"' in failure and "--judge none" in failure
