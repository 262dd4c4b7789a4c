"""`python -m prefpipe.bench labels [--data ../shared/data]`: how good each path to a final label is
on the public crowd sets, measured with prefpipe's own functions.

Per set: majority vote with the coin tie-break (and the data README's expected-accuracy reference),
majority with the old batch-favourite tie rule, the source design's path (drop annotators whose
composite reliability is under 0.6, then majority) with how many gold items it leaves unlabelled,
Dawid-Skene, and prefpipe.quality.final_labels' default. Accuracy is on the items with gold, an
unlabelled item counting as wrong. Every setting is fixed here before anything is scored; nothing
is tuned to these files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from prefpipe.bench.crowd_sets import CROWD_SETS, accuracy, load_crowd, majority_expected_accuracy
from prefpipe.quality import Annotations, annotator_reliability, dawid_skene, filter_annotations, final_labels, majority_vote

SOURCE_THRESHOLD = 0.6  # the source design's composite cut-off


def source_design_path(labels: pd.DataFrame) -> pd.Series:
    """Composite reliability (no gold, no durations in these sets: agreement alone) under 0.6 drops
    an annotator; majority of the rest with the old tie rule."""
    rel = annotator_reliability(labels, item="task", annotator="worker", duration=None, is_gold=None, gold_label=None,
                                threshold=SOURCE_THRESHOLD)
    kept, _ = filter_annotations(labels, rel, item="task", annotator="worker")
    return majority_vote(kept, item="task", annotator="worker", ties="batch").set_index("task")["label"]


def score_set(data: Path, name: str) -> dict:
    labels, gold = load_crowd(data, name)
    ann = Annotations.from_frame(labels, item="task", annotator="worker", label="label", on_duplicate="keep")
    once = labels.drop_duplicates(["task", "worker"])  # agreement needs one label per worker and task
    started = time.perf_counter()
    default = final_labels(labels, item="task", annotator="worker", label="label", on_duplicate="keep").set_index("task")["label"]
    default_s = time.perf_counter() - started
    source = source_design_path(once)
    return {
        "set": name, "items": ann.n_items, "gold_items": len(gold), "workers": ann.n_annotators, "labels": ann.n_labels,
        "majority (coin ties)": accuracy(majority_vote(ann).set_index("task")["label"], gold),
        "majority (expected, README)": majority_expected_accuracy(ann, gold),
        "majority (batch-favourite ties)": accuracy(majority_vote(ann, ties="batch").set_index("task")["label"], gold),
        "source path (filter 0.6, majority)": accuracy(source, gold),
        "source path: gold items unlabelled": int(source.reindex(gold.index).isna().sum()),
        "dawid-skene": accuracy(dawid_skene(ann).set_index("task")["label"], gold),
        "default (final_labels)": accuracy(default, gold),
        "default: gold items unlabelled": int(default.reindex(gold.index).isna().sum()),
        "default seconds": default_s,
    }


def report(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows, dtype=object).set_index("set").T
    lines = ["| | " + " | ".join(frame.columns) + " |", "|---|" + "---:|" * len(frame.columns)]
    for key, values in frame.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) and v <= 1 else (f"{v:.2f}" if isinstance(v, float) else f"{v:,}") for v in values]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefpipe.bench labels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), metavar="DIR",
                        help="the folder holding crowd/ (default: ../shared/data)")
    parser.add_argument("--sets", nargs="+", default=list(CROWD_SETS), metavar="NAME", help=f"crowd sets (default: {' '.join(CROWD_SETS)})")
    args = parser.parse_args(argv)
    if not (args.data / "crowd").is_dir():
        parser.error(f"{args.data / 'crowd'}: not found; pass --data with the folder holding the crowd sets")
    print(report([score_set(args.data, name) for name in args.sets]))
    return 0
