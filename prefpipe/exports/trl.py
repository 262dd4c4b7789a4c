"""The preference dataset in TRL's format, as Parquet and JSONL.

TRL's preference trainers (DPOTrainer, RewardTrainer) read the *standard* preference format: one
row per pair with `prompt`, `chosen` and `rejected` text (the completions without the prompt).
RewardTrainer also reads an optional `margin` column and subtracts it from the reward gap (as in
Llama 2), asking for a larger gap where the preference was strong and sure. Everything else here is
provenance, so a trainer can filter by batch, label source or version.

The rows come from the preference_dataset table (prefpipe.core.dataset.preference_rows), which orients
each decisive final label into chosen/rejected, leaves ties out, and sets

    margin = STRENGTH[label] * confidence

with STRENGTH 2 for A>>B / B>>A and 1 for A>B / B>A, and confidence the final label's posterior
(Dawid-Skene), vote share (majority, weighted) or the judge's confidence (AI). So the margin runs
from 0 (a doubtful label) to 2 (a strong, certain one). The export adds what the table lacks:
`batch_id`, the judge prompt version of AI labels, and the guideline version(s) of the labels
behind each final label when the table has none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.core.files import atomic_write, plain_records


TRL_COLUMNS: dict[str, pa.DataType] = {
    "prompt": pa.string(),
    "chosen": pa.string(),
    "rejected": pa.string(),
    "margin": pa.float64(),
    "pair_id": pa.string(),
    "label": pa.string(),
    "label_source": pa.string(),
    "batch_id": pa.string(),
    "guideline_version": pa.string(),
    "judge_prompt_version": pa.string(),
}
"""Columns of the exported files, in order, with their Arrow types."""

HUMAN_SOURCES = ("human", "expert")
"""label_source values (before any ":method") whose labels are human annotations."""


def _versions_per_pair(frame: pd.DataFrame | None, column: str) -> pd.Series:
    """pair_id -> the distinct versions (sorted, "+"-joined, as in final_labels) of that pair's usable labels."""
    if frame is None or frame.empty or column not in frame.columns:
        return pd.Series(dtype="object")
    usable = frame[frame["label"].notna() & frame[column].notna()]
    if "status" in usable.columns:
        usable = usable[usable["status"].eq("ok")]
    if usable.empty:
        return pd.Series(dtype="object")
    pairs = usable[["pair_id", column]].drop_duplicates().sort_values(["pair_id", column])
    return pairs.groupby("pair_id", sort=False)[column].agg("+".join)


def to_trl(
    preference_dataset: pd.DataFrame,
    *,
    ai_labels: pd.DataFrame | None = None,
    human_annotations: pd.DataFrame | None = None,
    batch_id: str | None = None,
) -> pd.DataFrame:
    """The export frame (TRL_COLUMNS) from preference_dataset rows.

    `batch_id` comes from the frame's own batch_id column (warehouse rows) or the argument.
    `judge_prompt_version` is known for AI labels only (from `ai_labels`); null otherwise.
    A missing `guideline_version` is filled with the version(s) of the pair's labels (the human
    annotations' for a human or expert label, the judge's for an AI label), "+"-joined when
    several; it stays null when no label says.
    """
    out = preference_dataset.copy()
    if "batch_id" not in out.columns:
        out["batch_id"] = batch_id
    elif batch_id is not None:
        out["batch_id"] = out["batch_id"].fillna(batch_id)
    prompt_versions = _versions_per_pair(ai_labels, "judge_prompt_version")
    source = out["label_source"].astype("object").fillna("").str.split(":").str[0]
    is_ai = source.eq("ai").to_numpy()
    out["judge_prompt_version"] = np.where(is_ai, out["pair_id"].map(prompt_versions), None)
    if "guideline_version" not in out.columns:
        out["guideline_version"] = None
    filled = np.where(
        source.isin(HUMAN_SOURCES).to_numpy(),
        out["pair_id"].map(_versions_per_pair(human_annotations, "guideline_version")),
        out["pair_id"].map(_versions_per_pair(ai_labels, "guideline_version")),
    )
    out["guideline_version"] = out["guideline_version"].where(out["guideline_version"].notna(), filled)
    out = out.loc[:, list(TRL_COLUMNS)]
    for name, typ in TRL_COLUMNS.items():
        out[name] = out[name].astype("float64") if typ == pa.float64() else out[name].astype("object")
        if typ == pa.string():
            out[name] = out[name].where(out[name].notna(), None)
    return out.reset_index(drop=True)


def write_trl(trl: pd.DataFrame, out_dir: Path, *, stem: str = "train") -> dict[str, Path]:
    """Write `<stem>.parquet` and `<stem>.jsonl` into out_dir; returns {"parquet": ..., "jsonl": ...}.

    Files are written to a temporary name and renamed, so a reader never sees half a file and a
    failed export leaves the previous one in place.
    """
    missing = [c for c in TRL_COLUMNS if c not in trl.columns]
    if missing:
        raise KeyError(f"TRL export: missing column(s) {', '.join(missing)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = trl.loc[:, list(TRL_COLUMNS)]
    table = pa.Table.from_pandas(frame, schema=pa.schema(list(TRL_COLUMNS.items())), preserve_index=False)
    paths = {"parquet": out_dir / f"{stem}.parquet", "jsonl": out_dir / f"{stem}.jsonl"}
    atomic_write(paths["parquet"], lambda p: pq.write_table(table, p))
    atomic_write(paths["jsonl"], lambda p: _write_jsonl(frame, p))
    return paths


def _write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in plain_records(frame):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
