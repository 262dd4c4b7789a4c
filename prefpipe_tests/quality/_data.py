"""Readers for the real data under ../shared/data used by the quality tests (see its README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prefpipe.quality import Annotations, label_counts

CROWD_SETS = ("D_Product", "S_Rel", "RTE")
PANDALM_LABELS = {1: "A>B", 2: "B>A", 0: "A=B"}  # 1 = response1 better, 2 = response2 better, 0 = tie


def load_crowd(shared: Path, name: str) -> tuple[pd.DataFrame, pd.Series]:
    """(labels with columns task, worker, label; gold Series task -> truth) for one crowd set."""
    folder = shared / "crowd" / name
    if name == "RTE":
        raw = pd.read_csv(folder / "rte.standardized.tsv", sep="\t")
        labels = raw.rename(columns={"orig_id": "task", "!amt_worker_ids": "worker", "response": "label"})[["task", "worker", "label"]]
        gold = raw.groupby("orig_id")["gold"].first().rename_axis("task")
    else:
        labels = pd.read_csv(folder / "answer.csv").rename(columns={"question": "task", "answer": "label"})[["task", "worker", "label"]]
        gold = pd.read_csv(folder / "truth.csv").set_index("question")["truth"].rename_axis("task")
    return labels, gold


def crowd_annotations(shared: Path, name: str) -> tuple[Annotations, pd.Series]:
    """Encoded crowd labels; S_Rel repeats some worker-task rows and, like crowd-kit and the
    published tables, every row counts as a vote (on_duplicate='keep')."""
    labels, gold = load_crowd(shared, name)
    ann = Annotations.from_frame(labels, item="task", annotator="worker", label="label", on_duplicate="keep")
    return ann, gold


def accuracy(predicted: pd.Series, gold: pd.Series) -> float:
    """Share of the gold tasks where the predicted label equals the truth."""
    common = gold.index.intersection(predicted.index)
    return float((predicted.loc[common].to_numpy() == gold.loc[common].to_numpy()).mean())


def majority_expected_accuracy(ann: Annotations, gold: pd.Series) -> float:
    """Majority-vote accuracy on the gold tasks with ties counted as a random tie-break's expected
    accuracy (the data README's definition)."""
    votes = label_counts(ann)
    winners = votes.eq(votes.max(axis=1), axis=0)
    common = gold.index.intersection(votes.index)
    w = winners.loc[common]
    cols = list(votes.columns)
    hit = w.to_numpy()[np.arange(len(common)), [cols.index(v) for v in gold.loc[common]]]
    return float((hit / w.sum(axis=1).to_numpy()).mean())


def load_pandalm(shared: Path) -> pd.DataFrame:
    """The demo batch: 999 pairs x 3 human annotators, on the five-point scale's labels."""
    records = json.loads((shared / "pandalm" / "testset-v1.json").read_text())
    rows = [
        (str(r["idx"]), f"annotator{k}", PANDALM_LABELS[int(r[f"annotator{k}"])])
        for r in records
        for k in (1, 2, 3)
    ]
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label"])
