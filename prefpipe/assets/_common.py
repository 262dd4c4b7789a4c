"""Small helpers shared by the asset modules (kept free of pipeline logic)."""

from __future__ import annotations

import pandas as pd

import dagster as dg

from prefpipe import schemas
from prefpipe.partitions import batches

BATCH_OUT = dict(metadata={"partition_expr": "batch_id"}, io_manager_key="warehouse")
"""Arguments of every per-batch table: stored in the warehouse, one batch_id's rows replaced at a time."""
BATCH_ASSET = dict(partitions_def=batches, **BATCH_OUT)
"""Arguments every per-batch asset shares: partitioned by batch, stored in the warehouse by batch_id."""


def with_batch(df: pd.DataFrame, schema: dict[str, str], batch_id: str, *, table: str) -> pd.DataFrame:
    """Conform to the table's columns and put batch_id first (the warehouse's partition column)."""
    out = schemas.conform(df, schema, name=table)
    out.insert(0, "batch_id", pd.Series([batch_id] * len(out), dtype="string"))
    return out


def drop_batch(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["batch_id"], errors="ignore")


def history_reward_model(batch_id: str):
    """The reward model trained on every other batch's final labels in the warehouse, or None when
    they hold too few directional labels (prefpipe.learning.history)."""
    from prefpipe.learning.history import reward_model_from_history
    from prefpipe.warehouse import read_tables

    history = read_tables(("response_pairs", "final_labels"))
    return reward_model_from_history(history["response_pairs"], history["final_labels"], exclude_batch=batch_id)


def md_table(df: pd.DataFrame, *, max_rows: int = 30) -> dg.MetadataValue:
    """A markdown table for the asset's metadata panel."""
    from prefpipe.reports.markdown import table_md

    return dg.MetadataValue.md(table_md(df, floatfmt=".4g", max_rows=max_rows) if len(df) else "_no rows_")


def md_image(png: bytes, alt: str) -> dg.MetadataValue:
    """A plot for the asset's metadata panel (an inline PNG)."""
    from prefpipe.reports.markdown import image_md

    return dg.MetadataValue.md(image_md(png, alt))
