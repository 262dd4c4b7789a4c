"""Every input file of a batch checked at once, before a run writes anything.

Each file is read again later by the stage that uses it (imported verdicts by `ai_labels`, labels
by `routing` and `human_annotations`, gold questions by `human_queue`); checked only there, a bad
annotation line failed a run after `prompts` and `response_pairs` were already replaced. The
`prompts` asset, the first of every run, calls `validate_batch_inputs`, so bad input now changes
nothing. With the `existing` strategy it also checks that every imported label or verdict names a
pair the prompts make (the pairs are numbered as prefpipe.generation.pairs numbers them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core.batch_config import BatchConfig, load_batch_config
from prefpipe.core.batches import PROMPTS_FILE
from prefpipe.core.ingest import AI_LABELS_FILE, annotation_files, import_ai_labels, import_human_annotations
from prefpipe.core.input_errors import BatchInputError
from prefpipe.core.pairs_file import PairsFileError, read_pairs
from prefpipe.core.prompts_file import read_prompts

GOLD_FILE = "gold.jsonl"
EXISTING = "existing"
"""The strategy that pairs the responses given in prompts.jsonl (the default)."""


@dataclass(frozen=True)
class BatchInputsReport:
    """What a batch folder holds, once every file in it has been checked."""

    config: BatchConfig
    prompts: pd.DataFrame = field(repr=False)
    """The `prompts` table's rows."""
    candidates: np.ndarray = field(repr=False)
    """How many responses each prompt brings."""
    pairs: int | None
    """The pairs the existing strategy makes of them; None when another strategy makes the pairs."""
    ai_labels: int
    annotations: int
    gold: int


def validate_batch_inputs(folder: Path, *, strategy: str | None = EXISTING) -> BatchInputsReport:
    """Check batch.json, prompts.jsonl, ai_labels.jsonl, annotations*.jsonl and gold.jsonl; raise
    the first problem as a BatchInputError naming the file, the line and the field. `strategy` is
    the run's pair strategy; the pair ids of imported labels are checked for `existing` only."""
    folder = Path(folder)
    config = load_batch_config(folder)
    source = folder / PROMPTS_FILE
    prompts, counts = read_prompts(source)
    known: pa.Array | None = None
    unpaired: dict[str, str] | None = None
    if strategy == EXISTING:
        if not (counts >= 2).any():
            raise BatchInputError(source, "no prompt has two responses, so the existing strategy makes no pair; add responses, "
                                  "or choose a generation strategy in the run config of response_pairs", field="responses")
        known, unpaired = existing_pairs(prompts, counts, source.name)
    ai_file = folder / AI_LABELS_FILE
    n_ai = 0
    if ai_file.is_file():
        n_ai = len(import_ai_labels(ai_file, config, guideline_version=config.imported_guideline_version, known_pairs=known, unpaired=unpaired))
    annotations = import_human_annotations(annotation_files(folder), config, known_pairs=known, unpaired=unpaired)
    pairs = len(known) if known is not None else None
    return BatchInputsReport(config, prompts, counts, pairs, n_ai, len(annotations), _gold_pairs(folder / GOLD_FILE))


def existing_pairs(prompts: pd.DataFrame, counts: np.ndarray, source: str) -> tuple[pa.Array, Mapping[str, str]]:
    """The pair ids the existing strategy makes (`<prompt id>:<k>`, k over every two of a prompt's
    responses), and the ids it records without a pair (`<prompt id>:0` of a prompt with fewer
    than two responses), each with the reason."""
    ids = pa.array(prompts["prompt_id"].astype("string[pyarrow]")).cast(pa.string())
    per_prompt = np.where(counts >= 2, counts * (counts - 1) // 2, 0)
    owners = np.repeat(np.arange(len(counts)), per_prompt)
    ks = np.arange(per_prompt.sum()) - np.repeat(np.cumsum(per_prompt) - per_prompt, per_prompt)
    made = pc.binary_join_element_wise(ids.take(pa.array(owners)), pa.array(ks.astype(str)), ":")
    short = np.flatnonzero(counts < 2)
    lines = prompts["source_line"].to_numpy()
    unpaired = {
        f"{pid}:0": f"prompt {pid!r} ({source} line {lines[i]}) has {counts[i]} response{'' if counts[i] == 1 else 's'}, "
        "and the existing strategy pairs two or more"
        for i, pid in zip(short, ids.take(pa.array(short, pa.int64())).to_pylist())
    }
    return made, unpaired


def _gold_pairs(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        return len(read_pairs(path, gold=True))
    except PairsFileError as exc:
        raise BatchInputError(exc.path, exc.reason, line=exc.line, field=exc.field) from exc
