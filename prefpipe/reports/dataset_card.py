"""The dataset card shipped next to the exported files: how the data was made and how much to trust it.

A reader of a preference dataset needs to know where the labels came from (people, an AI judge,
experts), under which guidelines, how well the annotators agreed, and what was left out: for this
batch, in its own counts (prefpipe.reports.batch_story), never the pipeline's design. The card
is markdown with a Hugging Face YAML header, so it doubles as the README of a Hub dataset repo.
It reads only the provenance columns and the margin, in Arrow: a million rows' text is never copied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import schemas
from prefpipe.core.batch_facts import BatchFacts
from prefpipe.core.dataset_versions import Publication
from prefpipe.exports.common import arrow_column
from prefpipe.reports.batch_story import how_it_was_made, version_sentences
from prefpipe.reports.markdown import table_md

AGREEMENT_COLUMNS = list(schemas.AGREEMENT_REPORT)


def _column(trl: pd.DataFrame | pa.Table, name: str, type: pa.DataType) -> pa.ChunkedArray:
    return trl[name].cast(type) if isinstance(trl, pa.Table) else arrow_column(trl[name], type)


def _counts_md(values: pa.ChunkedArray, header: str) -> str:
    """Rows and share per value, most first; ties in the order the values first appear (as pandas'
    value_counts, whose sort this is)."""
    counted = pc.value_counts(pc.fill_null(values, "(unknown)"))
    rows = pd.Series(counted.field("counts").to_numpy(), index=pd.Index(counted.field("values").to_pylist(), dtype="object"))
    counts = rows.sort_values(ascending=False).rename_axis(header).reset_index(name="rows")
    counts["share"] = counts["rows"] / max(int(counts["rows"].sum()), 1)
    return table_md(counts, floatfmt=".1%")


def _made(facts: BatchFacts, rows: int) -> list[str]:
    """The batch's own story as a list, and what it means for these files."""
    out = ["\n".join(f"- {line}" for line in how_it_was_made(facts, rows=rows))]
    if facts.waiting:
        out.append("The pairs still waiting are not in these files: a later version adds each once it is complete.")
    return out


def dataset_card(
    trl: pd.DataFrame | pa.Table,
    *,
    files: Sequence[str] = ("train.parquet", "train.jsonl"),
    agreement_report: pd.DataFrame | None = None,
    title: str = "prefpipe preference dataset",
    license: str | None = None,
    generated_at: dt.datetime | None = None,
    facts: BatchFacts | None = None,
    publication: Publication | None = None,
) -> str:
    """Markdown card for an exported TRL frame or table (prefpipe.exports.trl.to_trl or trl_table).

    `agreement_report` rows (schemas.AGREEMENT_REPORT, optionally with batch_id) give the
    agreement figures; batch-level metrics are shown, annotator-pair rows are summarised by count.
    `license` is written to the YAML header only when given: a licence is never guessed.
    `facts` (prefpipe.core.batch_facts) tell how this batch was made, in its own counts; without
    them the card says only what the rows show. `publication`: the version these files are
    (prefpipe.core.dataset_versions), with what changed since the previous one.
    """
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    parquet = next((f for f in files if f.endswith(".parquet")), files[0])
    header = ["---"]
    if license:
        header.append(f"license: {license}")
    header += [
        "tags:",
        "- preference",
        "- rlhf",
        "- dpo",
        "- prefpipe",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {parquet}",
        "---",
    ]
    n = trl.num_rows if isinstance(trl, pa.Table) else len(trl)
    margin = _column(trl, "margin", pa.float64()).to_pandas() if n else pd.Series(dtype="float64")
    names = trl.column_names if isinstance(trl, pa.Table) else trl.columns
    batches = sorted(pc.unique(pc.drop_null(_column(trl, "batch_id", pa.string()))).to_pylist()) if "batch_id" in names else []
    parts = [
        "\n".join(header),
        f"# {title}",
        f"{n:,} preference pairs from batch(es) {', '.join(batches) or '(unknown)'}, "
        f"exported by prefpipe on {generated_at:%Y-%m-%d %H:%M} UTC. Files: {', '.join(f'`{f}`' for f in files)}.",
    ]
    if publication is not None:
        parts += ["## Version", *version_sentences(publication)]
    parts += [
        "## How it was made",
        *(_made(facts, n) if facts is not None else [
            "Each row's `label_source` says where its label came from (table below): `human:<method>` people's labels "
            "combined by that method, `expert:expert` an expert's, `ai:ai` an AI verdict that stood.",
            "Ties (A=B) carry no preference and are not included; neither are pairs the pipeline dropped."]),
        "## Columns",
        "- `prompt`, `chosen`, `rejected`: TRL's standard preference format (completions without the prompt).\n"
        "- `margin`: label strength (2 for A>>B or B>>A, 1 for A>B or B>A) times the final label's "
        "confidence, from 0 to 2; RewardTrainer subtracts it from the reward gap. "
        f"{int(margin.isna().sum())} row(s) have no margin.\n"
        "- `label`: the five-point label in the pair's original order (A = the response first shown).\n"
        "- `label_source`, `batch_id`, `guideline_version`, `judge_prompt_version`: provenance.",
        "## Label sources",
        _counts_md(_column(trl, "label_source", pa.string()), "label_source") if n else "_No rows._",
        "## Guideline versions",
        _counts_md(_column(trl, "guideline_version", pa.string()), "guideline_version") if n else "_No rows._",
    ]
    if n:
        parts += [
            "## Margin",
            f"mean {margin.mean():.3f}, median {margin.median():.3f}, min {margin.min():.3f}, max {margin.max():.3f}.",
        ]
    parts.append("## Agreement")
    if agreement_report is None or agreement_report.empty:
        parts.append("_No agreement figures were computed for this export._")
    else:
        columns = [c for c in (["batch_id"] + AGREEMENT_COLUMNS) if c in agreement_report.columns]
        is_pair = agreement_report["scope"].astype(str).str.contains("|", regex=False)
        overall = agreement_report.loc[~is_pair, columns]
        parts.append(table_md(overall, floatfmt=".3f"))
        if is_pair.any():
            parts.append(f"Plus {int(is_pair.sum())} annotator-pair figure(s) in the batch reports.")
        parts.append(
            "Bands: 0.81-1.00 almost perfect; 0.61-0.80 substantial; 0.41-0.60 moderate; "
            "0.21-0.40 fair; 0.00-0.20 slight."
        )
    return "\n\n".join(parts) + "\n"
