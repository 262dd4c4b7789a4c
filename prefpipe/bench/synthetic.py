"""Seeded synthetic batches of imported pairs for the benchmarks: the demo batch's layout (prompts.jsonl
with two candidate responses a prompt, an external judge's verdict with a confidence a pair, people's
labels on a share of the pairs), so a run calls no LLM and measures the pipeline itself.

The frames are drawn with numpy and the text is built and written by DuckDB (its JSON writer), with no
Python loop over rows: a million-pair batch is written in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prefpipe.core.labels import SCALE

VOCABULARY = (
    "the a model answer data result value step first then because which should could explain example case "
    "time number list method test error code function system user input output question reason simple clear "
    "small large fast slow good better best more less each every other same different new old true false "
    "check note point part way work use make take give find show keep run read write call return change"
).split()
"""The words of the synthetic responses: real-looking text of any length with distinct content per row."""


@dataclass(frozen=True)
class BatchShape:
    pairs: int
    human_share: float = 1.0
    """Share of the pairs people labelled (labels_per_pair labels each, from different annotators)."""
    words: int = 0
    """Mean words a response; 0 for the short fixed texts of the team benchmark."""
    annotators: int = 40
    labels_per_pair: int = 3
    near_duplicates: float = 0.0
    """Share of pairs whose second response is the first with one word changed (dropped as near-identical)."""


def write_batch(folder: Path, batch_id: str, shape: BatchShape, seed: int) -> None:
    """prompts.jsonl, ai_labels.jsonl, annotations.jsonl and batch.json of one batch under `folder`."""
    import duckdb
    import pandas as pd

    pairs, k = shape.pairs, shape.labels_per_pair
    if shape.annotators < 2 * k:
        raise ValueError(f"annotators: {shape.annotators} is too few for {k} different annotators a pair")
    rng = np.random.default_rng(seed)
    scale = np.array(SCALE)
    truth = rng.choice(len(scale), pairs, p=[0.15, 0.3, 0.1, 0.3, 0.15])

    def noisy(rows: np.ndarray, shape_: tuple[int, ...], right: float) -> np.ndarray:
        want = truth[rows].reshape((len(rows),) + (1,) * (len(shape_) - 1))
        return scale[np.where(rng.random(shape_) < right, want, rng.integers(0, len(scale), shape_))]

    every = np.arange(pairs)
    if shape.words:
        len_a = np.maximum(rng.poisson(shape.words, pairs), 1)
        len_b = np.maximum(rng.poisson(shape.words, pairs), 1)
    else:
        len_a, len_b = rng.integers(3, 40, pairs), rng.integers(3, 40, pairs)
    frame = pd.DataFrame({"i": every, "topic": rng.integers(0, 500, pairs), "len_a": len_a, "len_b": len_b,
                          "near": rng.random(pairs) < shape.near_duplicates,
                          "verdict": noisy(every, (pairs,), 0.8), "conf": rng.beta(6, 2, pairs).round(3)})
    labelled = np.sort(rng.choice(pairs, int(round(pairs * shape.human_share)), replace=False)) if shape.human_share < 1 else every
    n = len(labelled)
    half = shape.annotators // k  # k different annotators a pair: one in each of k disjoint offset bands
    offsets = np.stack([j * half + rng.integers(0, half, n) for j in range(k)], 1) if n else np.zeros((0, k), int)
    who = (rng.integers(0, shape.annotators, n)[:, None] + offsets) % shape.annotators
    people = pd.DataFrame({"i": np.repeat(labelled, k), "who": who.ravel(), "label": noisy(labelled, (n, k), 0.85).ravel(),
                           "secs": rng.gamma(4.0, 5.0, n * k).round(1)})
    folder.mkdir(parents=True, exist_ok=True)
    pid = f"'{batch_id}-' || i"
    if shape.words:
        vocab = "[" + ", ".join(f"'{w}'" for w in VOCABULARY) + "]"
        words = lambda side, length: (  # noqa: E731 - a SQL fragment: `length` words drawn by a seeded hash
            f"array_to_string(list_transform(range({length}::INT), w -> {vocab}[1 + (hash(i, w, {seed}, '{side}') % {len(VOCABULARY)})::INT]), ' ')")
        text_a = f"'Answer ' || i || ': ' || {words('a', 'len_a')}"
        text_b = f"CASE WHEN near THEN 'Answer ' || i || ': ' || {words('a', 'len_a')} || ' indeed' ELSE 'Reply ' || i || ': ' || {words('b', 'len_b')} END"
    else:
        text_a = "repeat('word ', len_a::INT) || 'answer ' || i"
        text_b = "repeat('other ', len_b::INT) || 'reply ' || i"
    queries = {
        "prompts.jsonl": f"""SELECT {pid} AS id, 'Question ' || i || ' on topic ' || topic || ': explain it briefly.' AS prompt,
            [{{'model': 'model-x', 'text': {text_a}}}, {{'model': 'model-y', 'text': {text_b}}}] AS responses FROM frame ORDER BY i""",
        "ai_labels.jsonl": f"SELECT {pid} || ':0' AS pair_id, 'bench-judge' AS judge, verdict, conf AS confidence FROM frame ORDER BY i",
        "annotations.jsonl": f"""SELECT {pid} || ':0' AS pair_id, 'ann' || who AS annotator_id, label, secs AS duration_s
            FROM people ORDER BY i, who""",
    }
    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = true; SET enable_progress_bar = false")
        con.register("frame", frame)
        con.register("people", people)
        for name, query in queries.items():
            con.execute(f"COPY ({query}) TO '{str(folder / name).replace(chr(39), chr(39) * 2)}' (FORMAT json)")
    (folder / "batch.json").write_text(json.dumps({"closed": True, "external_judge": "bench-judge",  # closed: the nightly schedule leaves it
                                                   "description": f"synthetic imported pairs, seed {seed}"}), encoding="utf-8")
