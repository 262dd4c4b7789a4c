"""A small real batch in a temporary data folder, and helpers to run the graph on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import dagster as dg

from prefpipe_tests.conftest import PROJECT_ROOT
from prefpipe_tests.llm.fixtures import client, guidelines, server  # noqa: F401 - fixtures

VERDICTS = ["1", "2", "Tie", "garbage", "1", "2"]
HUMAN = [(1, 1, 1), (2, 2, 2), (0, 0, 0), (1, 1, 2), (2, 2, 2), (1, 1, 1)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_batch(data_dir: Path, batch_id: str, n: int = 6) -> Path:
    folder = data_dir / "batches" / batch_id
    prompts = [
        {"id": f"q{i}", "prompt": f"Question {i}: explain topic {i}.", "responses": [
            {"model": "model-x", "text": f"A short answer about topic {i}."},
            {"model": "model-y", "text": f"A longer and rather different explanation of subject number {i}, with detail."},
        ]}
        for i in range(n)
    ]
    write_jsonl(folder / "prompts.jsonl", prompts)
    write_jsonl(folder / "ai_labels.jsonl", [{"pair_id": f"q{i}:0", "verdict": VERDICTS[i % 6]} for i in range(n)])
    write_jsonl(folder / "annotations.jsonl", [
        {"pair_id": f"q{i}:0", "annotator_id": f"ann{k}", "label": HUMAN[i % 6][k]} for i in range(n) for k in range(3)
    ])
    (folder / "batch.json").write_text(json.dumps({"label_map": {"0": "A=B", "1": "A>B", "2": "B>A", "Tie": "A=B"}, "external_judge": "ext-judge"}))
    return folder


@pytest.fixture
def project_data(data_dir: Path) -> Path:
    """PREFPIPE_DATA_DIR with the project's guidelines and one small batch `mini`."""
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data_dir / "guidelines")
    make_batch(data_dir, "mini")
    return data_dir


def materialize(batch_id: str, instance: dg.DagsterInstance, *, resources: dict | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    """Run every asset of the project for one batch, as the pipeline job does."""
    from prefpipe.definitions import build_definitions

    if batch_id not in instance.get_dynamic_partitions("batches"):
        instance.add_dynamic_partitions("batches", [batch_id])
    resources = {**build_definitions().resources, **(resources or {})}
    return dg.materialize(build_definitions().assets, partition_key=batch_id, instance=instance, resources=resources, raise_on_error=False, **kwargs)
