"""Which batches were made under an older guideline or judge prompt, and what relabelling costs.

Every AI label and human annotation carries the guideline version (a content hash) and, for AI
labels, the judge prompt version it was made under; final labels and the preference dataset carry
the versions of the labels behind them. A row is stale when its version differs from the current
one (a missing version counts as stale: we cannot show it is current).

What happens to stale rows differs by stage, and the view says so in `action`:
- ai_labels: relabelled by a backfill (cost: what those labels cost last time, from their
  cost_usd, or the ledger's unit cost per AI label when unknown);
- human_annotations: kept and marked with the version they were made under; relabelling them is
  the user's call, so the cost shown is what it would take (the ledger's unit cost per human
  label). `n_gold_stale` counts gold answers among them: gold answers checked under old
  guidelines may no longer be right under the new ones;
- final_labels, preference_dataset: rebuilt for free by the backfill from the labels above.

Counting is done in SQL (DuckDB), over the warehouse itself or over DataFrames registered in an
in-memory DuckDB, so the same code serves the asset check, the CLI and the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from prefpipe.core.settings import WAREHOUSE_SCHEMA


@dataclass(frozen=True)
class Stage:
    table: str
    judge_prompt: bool  # the table has judge_prompt_version
    has_cost: bool  # the table has cost_usd
    has_gold: bool  # the table has is_gold
    only_labelled: bool  # count rows with a label only (a skipped item is not a label)
    action: str


STAGES: tuple[Stage, ...] = (
    Stage("ai_labels", True, True, False, False, "relabel"),
    Stage("human_annotations", False, False, True, True, "kept, marked with their version"),
    Stage("final_labels", False, False, False, False, "rebuilt from current labels"),
    Stage("preference_dataset", False, False, False, False, "rebuilt from current labels"),
)

LEDGER_ITEMS: dict[str, str] = {"ai_labels": "ai_label", "human_annotations": "human_label"}
"""cost_report `item` whose unit_usd is the cost of one label of that stage."""

STALE_BATCHES: dict[str, str] = {
    "batch_id": "string",
    "stage": "string",
    "n_labels": "Int64",
    "n_stale": "Int64",
    "n_stale_guideline": "Int64",
    "n_stale_judge_prompt": "Int64",
    "stale_guideline_versions": "string",
    "stale_judge_prompt_versions": "string",
    "n_gold_stale": "Int64",
    "estimated_cost_usd": "float64",
    "action": "string",
}

UNKNOWN = "(unknown)"

Tables = Mapping[str, pd.DataFrame] | duckdb.DuckDBPyConnection


def _connect(tables: Tables) -> tuple[duckdb.DuckDBPyConnection, set[str], bool]:
    """A connection that sees the tables by name, the names present, and whether we own it."""
    if isinstance(tables, duckdb.DuckDBPyConnection):
        names = {
            row[0]
            for row in tables.execute(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{WAREHOUSE_SCHEMA}'"
            ).fetchall()
        }
        return tables, names, False
    con = duckdb.connect()
    names = set()
    for name, frame in tables.items():
        if frame is None:
            continue
        if "batch_id" not in frame.columns:
            raise KeyError(f"{name}: the frame needs a batch_id column (warehouse rows)")
        con.register(name, frame)
        names.add(name)
    return con, names, True


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unit_costs(cost_ledger: Mapping[str, float] | pd.DataFrame | None) -> dict[str, float]:
    """USD per label by stage, from a mapping or from cost_report rows (items LEDGER_ITEMS)."""
    if cost_ledger is None:
        return {}
    if isinstance(cost_ledger, pd.DataFrame):
        rows = cost_ledger
        if "section" in rows.columns:
            rows = rows[rows["section"].eq("ledger")]
        units = {}
        for stage, item in LEDGER_ITEMS.items():
            values = pd.to_numeric(rows.loc[rows["item"].eq(item), "unit_usd"], errors="coerce").dropna()
            if not values.empty:
                units[stage] = float(values.median())
        return units
    return {str(k): float(v) for k, v in cost_ledger.items()}


def stale_batches(
    tables: Tables,
    current_guideline_version: str,
    current_judge_prompt_version: str | None,
    cost_ledger: Mapping[str, float] | pd.DataFrame | None = None,
    *,
    include_current: bool = False,
) -> pd.DataFrame:
    """One row per batch and stage with stale rows (columns STALE_BATCHES).

    `tables`: warehouse tables by name (DataFrames with a batch_id column) or a DuckDB connection
    to the warehouse (tables in schema main). `cost_ledger`: USD per label by stage
    ({"ai_labels": 0.002, "human_annotations": 0.5}) or cost_report rows, whose `item`
    LEDGER_ITEMS[stage] gives the unit cost. `current_judge_prompt_version` None means the judge
    prompt is not checked. `include_current` also lists stages that are up to date (n_stale 0).
    """
    con, present, owned = _connect(tables)
    units = unit_costs(cost_ledger)
    frames = []
    try:
        for stage in STAGES:
            if stage.table not in present:
                continue
            table = _quote(stage.table) if owned else f"{WAREHOUSE_SCHEMA}.{_quote(stage.table)}"
            check_prompt = stage.judge_prompt and current_judge_prompt_version is not None
            prompt_stale = "judge_prompt_version IS DISTINCT FROM $prompt" if check_prompt else "false"
            where = "WHERE label IS NOT NULL" if stage.only_labelled else ""
            cost_cols = (
                "sum(cost_usd) FILTER (WHERE stale) AS stale_known_cost,"
                " count(*) FILTER (WHERE stale AND cost_usd IS NULL) AS n_stale_unknown_cost"
                if stage.has_cost
                else "NULL AS stale_known_cost, count(*) FILTER (WHERE stale) AS n_stale_unknown_cost"
            )
            gold = "count(*) FILTER (WHERE stale AND is_gold)" if stage.has_gold else "0"
            sql = f"""
                WITH rows AS (
                    SELECT *, guideline_version IS DISTINCT FROM $guideline AS g_stale,
                           {prompt_stale} AS p_stale
                    FROM {table} {where}
                ), marked AS (SELECT *, g_stale OR p_stale AS stale FROM rows)
                SELECT batch_id,
                       count(*) AS n_labels,
                       count(*) FILTER (WHERE stale) AS n_stale,
                       count(*) FILTER (WHERE g_stale) AS n_stale_guideline,
                       count(*) FILTER (WHERE p_stale) AS n_stale_judge_prompt,
                       string_agg(DISTINCT coalesce(guideline_version, '{UNKNOWN}'), ', '
                                  ORDER BY coalesce(guideline_version, '{UNKNOWN}')) FILTER (WHERE g_stale)
                           AS stale_guideline_versions,
                       {"string_agg(DISTINCT coalesce(judge_prompt_version, '" + UNKNOWN + "'), ', ' ORDER BY coalesce(judge_prompt_version, '" + UNKNOWN + "')) FILTER (WHERE p_stale)" if check_prompt else "NULL"}
                           AS stale_judge_prompt_versions,
                       {gold} AS n_gold_stale,
                       {cost_cols}
                FROM marked GROUP BY batch_id
            """
            params = {"guideline": current_guideline_version}
            if check_prompt:
                params["prompt"] = current_judge_prompt_version
            df = con.execute(sql, params).df()
            # without a ledger, an AI label of unknown cost is priced at the table's mean cost per label
            mean = con.execute(f"SELECT avg(cost_usd) FROM {table}").fetchone()[0] if stage.has_cost else None
            df["stage"] = stage.table
            df["action"] = stage.action
            df["estimated_cost_usd"] = _estimate_cost(stage, df, units, np.nan if mean is None else float(mean))
            frames.append(df.loc[:, list(STALE_BATCHES)].astype(STALE_BATCHES))
    finally:
        if owned:
            con.close()
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in STALE_BATCHES.items()})
    out = pd.concat(frames, ignore_index=True)
    if not include_current:
        out = out[out["n_stale"] > 0]
    order = {s.table: i for i, s in enumerate(STAGES)}
    out = out.assign(_o=out["stage"].map(order)).sort_values(["batch_id", "_o"]).drop(columns="_o")
    return out.loc[:, list(STALE_BATCHES)].astype(STALE_BATCHES).reset_index(drop=True)


def _estimate_cost(stage: Stage, df: pd.DataFrame, units: Mapping[str, float], mean_cost: float) -> np.ndarray:
    n_unknown = df["n_stale_unknown_cost"].astype("float64").to_numpy()
    if stage.table == "ai_labels":
        unit = units.get(stage.table, mean_cost)
        known = pd.to_numeric(df["stale_known_cost"], errors="coerce").fillna(0.0).to_numpy()
        return known + np.where(n_unknown > 0, n_unknown * unit, 0.0)
    if stage.table == "human_annotations":
        unit = units.get(stage.table, np.nan)
        return np.where(n_unknown > 0, n_unknown * unit, 0.0)
    return np.zeros(len(df))


def stale_batch_ids(stale: pd.DataFrame) -> list[str]:
    """Batches a backfill should rerun: any stage other than kept human annotations is stale."""
    rerun = stale[(stale["n_stale"] > 0) & ~stale["stage"].eq("human_annotations")]
    return sorted(rerun["batch_id"].dropna().astype(str).unique())


def label_versions(tables: Tables) -> pd.DataFrame:
    """How many labels each batch and stage has under each version: batch_id, stage,
    guideline_version, judge_prompt_version, n_labels (for reports; skipped items not counted)."""
    columns = {"batch_id": "string", "stage": "string", "guideline_version": "string",
               "judge_prompt_version": "string", "n_labels": "Int64"}
    con, present, owned = _connect(tables)
    frames = []
    try:
        for stage in STAGES[:2]:
            if stage.table not in present:
                continue
            table = _quote(stage.table) if owned else f"{WAREHOUSE_SCHEMA}.{_quote(stage.table)}"
            prompt = "judge_prompt_version" if stage.judge_prompt else "NULL"
            where = "WHERE label IS NOT NULL" if stage.only_labelled else ""
            df = con.execute(
                f"SELECT batch_id, '{stage.table}' AS stage, guideline_version, {prompt} AS judge_prompt_version,"
                f" count(*) AS n_labels FROM {table} {where} GROUP BY ALL ORDER BY ALL"
            ).df()
            frames.append(df.astype(columns))
    finally:
        if owned:
            con.close()
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    return pd.concat(frames, ignore_index=True)
