"""Readers for the public crowd-labelling sets in ../shared/data/crowd (see its README.md): labels as
(task, worker, label) and the gold truth, for the label benchmarks and the quality tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prefpipe.quality import Annotations, label_counts

CROWD_SETS: tuple[str, ...] = ("D_Product", "S_Rel", "RTE")


def load_crowd(data: Path, name: str) -> tuple[pd.DataFrame, pd.Series]:
    """(labels with columns task, worker, label; gold Series task -> truth) for one crowd set under
    `data` (the folder holding crowd/)."""
    folder = Path(data) / "crowd" / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such crowd set (expected one of {', '.join(CROWD_SETS)} under {Path(data) / 'crowd'})")
    if name == "RTE":
        raw = pd.read_csv(folder / "rte.standardized.tsv", sep="\t")
        labels = raw.rename(columns={"orig_id": "task", "!amt_worker_ids": "worker", "response": "label"})[["task", "worker", "label"]]
        gold = raw.groupby("orig_id")["gold"].first().rename_axis("task")
    else:
        labels = pd.read_csv(folder / "answer.csv").rename(columns={"question": "task", "answer": "label"})[["task", "worker", "label"]]
        gold = pd.read_csv(folder / "truth.csv").set_index("question")["truth"].rename_axis("task")
    return labels, gold


def accuracy(predicted: pd.Series, gold: pd.Series) -> float:
    """Share of the gold tasks where the predicted label equals the truth (a task with no
    predicted label counts as wrong: coverage is part of accuracy)."""
    got = predicted.reindex(gold.index)
    return float((got.to_numpy(dtype=object) == gold.to_numpy(dtype=object)).mean())


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
