"""Batches: the folders under data/batches/<batch_id>/ that users drop prompts into.

A batch folder holds
- prompts.jsonl (required): one JSON object a line with `prompt` (text), optional `id`, and
  optional `responses`, a list of existing candidate responses `{"model": ..., "text": ...}`
  (prefpipe.core.prompts_file);
- batch.json (optional): settings of the batch (prefpipe.core.batch_config);
- ai_labels.jsonl (optional): verdicts of an external judge to import (prefpipe.core.ingest);
- annotations.jsonl and annotations/*.jsonl (optional): human labels made elsewhere to import.

Bad input fails the batch with a message naming the file, the line and the field;
prefpipe.core.batch_inputs checks every file of a batch before a run writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefpipe.core import settings
from prefpipe.core.batch_config import CONFIG_FILE, BatchConfig, load_batch_config
from prefpipe.core.input_errors import BatchInputError
from prefpipe.core.jsonl import read_jsonl
from prefpipe.core.prompts_file import load_prompts, prompt_id_for

__all__ = [  # the readers of a batch's files, re-exported where callers have always found them
    "CONFIG_FILE", "PROMPTS_FILE", "BatchConfig", "BatchInputError", "is_valid_batch_id", "list_batches", "load_batch_config",
    "load_prompts", "open_batches", "prompt_id_for", "read_jsonl",
]

PROMPTS_FILE = "prompts.jsonl"
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def is_valid_batch_id(name: str) -> bool:
    return bool(BATCH_ID_PATTERN.match(name))


def list_batches(root: Path | None = None) -> list[str]:
    """Batch ids: folders under data/batches/ with a prompts.jsonl and a valid name."""
    root = root or settings.batches_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_valid_batch_id(p.name) and (p / PROMPTS_FILE).is_file())


def open_batches(root: Path | None = None) -> list[str]:
    """Batches the nightly schedule reruns: every batch whose batch.json does not say closed."""
    root = root or settings.batches_dir()
    out = []
    for batch_id in list_batches(root):
        try:
            closed = load_batch_config(root / batch_id).closed
        except BatchInputError:
            closed = False  # rerun it: the run then fails with the message that names the problem
        if not closed:
            out.append(batch_id)
    return out
