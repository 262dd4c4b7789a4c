"""Readers for the real data under ../shared/data used by the quality tests (see its README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prefpipe.bench.crowd_sets import CROWD_SETS, accuracy, load_crowd, majority_expected_accuracy
from prefpipe.quality import Annotations

__all__ = ["CROWD_SETS", "accuracy", "crowd_annotations", "load_crowd", "majority_expected_accuracy"]

PANDALM_LABELS = {1: "A>B", 2: "B>A", 0: "A=B"}  # 1 = response1 better, 2 = response2 better, 0 = tie


def crowd_annotations(shared: Path, name: str) -> tuple[Annotations, pd.Series]:
    """Encoded crowd labels; S_Rel repeats some worker-task rows and, like crowd-kit and the
    published tables, every row counts as a vote (on_duplicate='keep')."""
    labels, gold = load_crowd(shared, name)
    ann = Annotations.from_frame(labels, item="task", annotator="worker", label="label", on_duplicate="keep")
    return ann, gold


def load_pandalm(shared: Path) -> pd.DataFrame:
    """The demo batch: 999 pairs x 3 human annotators, on the five-point scale's labels."""
    records = json.loads((shared / "pandalm" / "testset-v1.json").read_text())
    rows = [
        (str(r["idx"]), f"annotator{k}", PANDALM_LABELS[int(r[f"annotator{k}"])])
        for r in records
        for k in (1, 2, 3)
    ]
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label"])
