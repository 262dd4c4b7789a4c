"""The stale view: one row per batch and stage saying which rows a rerun would redo, made under
which versions, and what relabelling costs. `prefpipe stale`, the stale-batch checks and the HTML
report all show this same view.

A batch is stale when rerunning it would change it:
- AI labels made by prefpipe's own judge under an older guideline or judge prompt version;
- its last run (the ai_labels materialization recorded in the Dagster instance) used an older
  guideline version: routing thresholds, reliability and gold rules and therefore final labels
  follow the rubric, so even a batch of imported labels is rebuilt. A batch with rows in the
  warehouse but no run recorded in this instance counts as stale: we cannot show it is current.
Imported verdicts and human labels (batch folder files) keep the version they were made under
elsewhere; a rerun imports them unchanged, so they never make a batch stale. Human labels made in
prefpipe's app under an older version are listed (kept, marked with their version) but never make
a batch stale: asking people again is the team's call, and the view prices it.

The counting is prefpipe.core.staleness's (in DuckDB); the `last_run` stage comes from the Dagster
instance (prefpipe.defs.stale_view), which also knows the current judge template versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

RUN_STAGE = "last_run"
RUN_ACTION = "rerun under the current guidelines: routing, reliability, final labels, reports and exports rebuilt"
NO_RUN_RECORDED = "(no run recorded in this Dagster instance)"
CURRENT_PROMPT = "(current)"
"""Stands for "the current version of this label's own judge template" (judges may use different templates)."""
LAST_STAGE = "preference_dataset"
"""The pipeline's last stage: a run that materialized it after ai_labels rebuilt the whole batch."""
NEVER_COMPLETED = "never completed"
"""The action of a batch no run has completed and whose last run failed: nothing of it is stale,
since nothing was made to last (a failed run's writes are put back)."""


@dataclass(frozen=True)
class CurrentVersions:
    guideline: str
    judge_prompts: Mapping[str, str]
    """Packaged judge template name -> its current version ("judge_v1" -> "judge_v1@02552c692bba")."""


def prompt_is_current(versions: pd.Series, current: Mapping[str, str]) -> pd.Series:
    """True where a judge prompt version ("<template>@<hash>") is its template's current version.

    A template that is not packaged (a file given by path) cannot be looked up again, so its labels
    count as current; a missing version counts as stale (we cannot show it is current)."""
    text = versions.astype("string")
    name = text.str.split("@", n=1).str[0]
    expected = name.map(dict(current)).astype("string")
    known = expected.notna()
    return (text.notna() & (~known | text.eq(expected).fillna(False))).astype(bool)


def own_labels(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The label rows a rerun can redo: prefpipe's own judge verdicts and labels made in prefpipe's
    app (imported verdicts and human labels keep the version they were made under elsewhere)."""
    from prefpipe.core.ingest import EXTERNAL_PROMPT_VERSION

    out = {}
    ai = tables.get("ai_labels")
    if ai is not None:
        out["ai_labels"] = ai[ai["judge_prompt_version"].astype("string").ne(EXTERNAL_PROMPT_VERSION).fillna(True)]
    human = tables.get("human_annotations")
    if human is not None:
        out["human_annotations"] = human[~human["source"].astype("string").str.startswith("import:").fillna(False)]
    return out


def stale_view(
    tables: Mapping[str, pd.DataFrame],
    last_run_versions: Mapping[str, str | None],
    current: CurrentVersions,
    *,
    cost_ledger: pd.DataFrame | Mapping[str, float] | None = None,
    final_label_counts: Mapping[str, int] | None = None,
    include_current: bool = False,
    never_completed: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per batch and stage with stale rows (prefpipe.core.staleness.STALE_BATCHES columns).

    `tables`: warehouse rows (with batch_id) of ai_labels and human_annotations; `last_run_versions`:
    batch -> the guideline version its last ai_labels materialization recorded (None: no run
    recorded); `final_label_counts`: batch -> final labels a rerun rebuilds (shown as the last_run
    stage's size). `never_completed`: batch -> how its last run ended, for batches no run has
    completed: each gets one last_run row whose action says so (never stale: there is nothing
    to redo, only a failure to fix), whatever rows a failed run left."""
    import numpy as np
    import pandas as pd

    from prefpipe.core.staleness import STALE_BATCHES, STAGES, stale_batches

    never = dict(never_completed or {})
    frames = {name: frame[~frame["batch_id"].astype("string").isin(list(never)).fillna(False)] if never else frame
              for name, frame in own_labels(tables).items()}
    ai = frames.get("ai_labels")
    if ai is not None:
        current_prompt = prompt_is_current(ai["judge_prompt_version"], current.judge_prompts)
        frames["ai_labels"] = ai.assign(judge_prompt_version=ai["judge_prompt_version"].astype("string").where(~current_prompt, CURRENT_PROMPT))
    view = stale_batches(frames, current.guideline, CURRENT_PROMPT, cost_ledger, include_current=include_current)

    counts = dict(final_label_counts or {})
    batches = sorted(set(last_run_versions) - set(never))
    recorded = pd.Series([last_run_versions[b] for b in batches], dtype="string")
    stale = recorded.ne(current.guideline).fillna(True).to_numpy()
    n = pd.array([counts.get(b) for b in batches], dtype="Int64")
    runs = pd.DataFrame({
        "batch_id": batches,
        "stage": RUN_STAGE,
        "n_labels": n,
        "n_stale": pd.array(np.where(stale, n, 0), dtype="Int64"),
        "n_stale_guideline": pd.array(np.where(stale, n, 0), dtype="Int64"),
        "n_stale_judge_prompt": 0,
        "stale_guideline_versions": recorded.fillna(NO_RUN_RECORDED).where(stale, None),
        "stale_judge_prompt_versions": None,
        "n_gold_stale": 0,
        "estimated_cost_usd": 0.0,
        "action": RUN_ACTION,
    })
    if not include_current:
        runs = runs[stale]
    failed = pd.DataFrame({
        "batch_id": sorted(never), "stage": RUN_STAGE, "n_labels": pd.array([counts.get(b) for b in sorted(never)], dtype="Int64"),
        "n_stale": 0, "n_stale_guideline": 0, "n_stale_judge_prompt": 0, "stale_guideline_versions": None,
        "stale_judge_prompt_versions": None, "n_gold_stale": 0, "estimated_cost_usd": 0.0,
        "action": [f"{NEVER_COMPLETED}: {never[b]}" for b in sorted(never)],
    })
    out = pd.concat([view, runs.astype(STALE_BATCHES), *([failed.astype(STALE_BATCHES)] if never else [])], ignore_index=True)
    order = {RUN_STAGE: -1, **{s.table: i for i, s in enumerate(STAGES)}}
    out = out.assign(_o=out["stage"].map(order)).sort_values(["batch_id", "_o"], kind="stable").drop(columns="_o")
    return out.reset_index(drop=True).astype(STALE_BATCHES)


def never_completed_batches(view: pd.DataFrame) -> dict[str, str]:
    """Batch -> what its never-completed row says (stale_view's `never_completed` rows)."""
    rows = view[view["stage"].eq(RUN_STAGE) & view["action"].astype("string").str.startswith(NEVER_COMPLETED).fillna(False)]
    return dict(zip(rows["batch_id"].astype(str), rows["action"].astype(str)))


def batches_to_rerun(view: pd.DataFrame) -> list[str]:
    """Batches a backfill should rerun: stale rows that a rerun relabels or rebuilds
    (staleness.stale_batch_ids), and every batch whose last run used older guidelines, even one
    that left no final label to count."""
    from prefpipe.core.staleness import stale_batch_ids

    runs = view[(view["stage"] == RUN_STAGE) & view["stale_guideline_versions"].notna()]
    return sorted(set(stale_batch_ids(view)) | set(runs["batch_id"].astype(str)))


WAREHOUSE_COLUMNS = {
    "ai_labels": "batch_id, guideline_version, judge_prompt_version, cost_usd",
    "human_annotations": "batch_id, label, is_gold, source, guideline_version",
    "cost_report": "batch_id, section, item, unit_usd",
}

OWN_ROWS = {
    "ai_labels": "judge_prompt_version IS DISTINCT FROM $external",
    "human_annotations": "NOT coalesce(starts_with(source, 'import:'), false)",
}
"""The rows own_labels keeps, as SQL: a batch of a million imported verdicts and labels reads none."""


def read_warehouse(database: str | Path | None = None, *, batch_id: str | None = None) -> dict:
    """What the view needs, in one short read-only connection: the label rows a rerun can redo
    (own_labels' rows, chosen in the warehouse), the batches with any label rows
    ({"label_batches": [...]}), the cost ledger, and final labels per batch ({"final_label_counts":
    {batch: n}})."""
    from prefpipe.core.ingest import EXTERNAL_PROMPT_VERSION
    from prefpipe.core.settings import WAREHOUSE_SCHEMA
    from prefpipe.core.warehouse import present_tables, read_only

    out: dict = {"final_label_counts": {}, "label_batches": []}
    with read_only(database) as con:
        if con is None:
            return out
        present = present_tables(con)
        where = "WHERE batch_id = $batch" if batch_id is not None else "WHERE true"
        params = {"batch": batch_id} if batch_id is not None else {}
        batches: set[str] = set()
        for table, columns in WAREHOUSE_COLUMNS.items():
            if table not in present:
                continue
            own = f" AND {OWN_ROWS[table]}" if table in OWN_ROWS else ""
            extra = {"external": EXTERNAL_PROMPT_VERSION} if table == "ai_labels" else {}
            out[table] = con.execute(f"SELECT {columns} FROM {WAREHOUSE_SCHEMA}.{table} {where}{own}", {**params, **extra}).df()
            if table in OWN_ROWS:
                rows = con.execute(f"SELECT DISTINCT batch_id FROM {WAREHOUSE_SCHEMA}.{table} {where} AND batch_id IS NOT NULL", params).fetchall()
                batches |= {str(row[0]) for row in rows}
        out["label_batches"] = sorted(batches)
        if "final_labels" in present:
            rows = con.execute(f"SELECT batch_id, count(*) FROM {WAREHOUSE_SCHEMA}.final_labels {where} GROUP BY batch_id", params).fetchall()
            out["final_label_counts"] = {str(b): int(n) for b, n in rows}
    return out


def warehouse_batches(tables: Mapping) -> list[str]:
    """Batches with label rows or final labels in the warehouse."""
    found = set(tables.get("final_label_counts", {})) | set(tables.get("label_batches", []))
    for name in ("ai_labels", "human_annotations"):
        if name in tables:
            found |= set(tables[name]["batch_id"].dropna().astype(str))
    return sorted(found)
