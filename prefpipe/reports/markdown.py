"""Markdown for the Dagster UI (MetadataValue.md) and the dataset card.

Tables go through pandas' to_markdown (tabulate); cell text is escaped first so a `|` in a value
(annotator-pair scopes are "a|b") or a newline in a prompt cannot break the table.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from prefpipe.core import schemas


def _escape_cell(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return value


def table_md(df: pd.DataFrame, *, floatfmt: str = ".3f", max_rows: int = 50) -> str:
    """A markdown table of `df` (index dropped), at most `max_rows` rows with a note of the rest."""
    if df is None or df.empty:
        return "_No rows._"
    shown = df.head(max_rows).copy()
    for col in shown.columns:
        if shown[col].dtype == object or str(shown[col].dtype) == "string":
            shown[col] = shown[col].astype("object").map(_escape_cell)
    text = shown.to_markdown(index=False, floatfmt=floatfmt, missingval="")
    if len(df) > max_rows:
        text += f"\n\n_{len(df) - max_rows} more row(s) not shown._"
    return text


def image_md(png: bytes, alt: str) -> str:
    """An inline image (data URI), for markdown viewers that render them."""
    alt = alt.replace("[", "(").replace("]", ")")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def agreement_md(agreement_report: pd.DataFrame) -> str:
    return table_md(agreement_report[[c for c in schemas.AGREEMENT_REPORT if c in agreement_report.columns]])


def judge_card_md(card: pd.DataFrame) -> str:
    """The judge report card, one row per judge, rates as percentages."""
    shown = card.copy()
    for col in shown.columns:
        is_rate = col.endswith(("_rate", "preference")) or "agreement" in col
        if is_rate and shown[col].dtype.kind == "f":
            shown[col] = np.where(shown[col].isna(), None, (shown[col] * 100).round(1).astype(str) + "%")
    return table_md(shown, floatfmt=".4g")


def staleness_md(stale: pd.DataFrame) -> str:
    if stale is None or stale.empty:
        return "_Every batch is up to date with the current guideline and judge prompt versions._"
    return table_md(stale, floatfmt=".2f")
