"""The stale view as the pipeline sees it: the current guideline and judge template versions, and
the guideline version each batch's last run used, read from the Dagster instance. The checks,
published_dataset and `prefpipe stale` call `compute_view`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from prefpipe.core.stale_view import LAST_STAGE, CurrentVersions, batches_to_rerun, read_warehouse, stale_view, warehouse_batches


def current_versions(guidelines_dir: str | Path | None = None) -> CurrentVersions:
    """The guideline version of the guidelines folder (default data/guidelines/) and of every packaged judge template."""
    from prefpipe.core.guidelines import load_guidelines
    from prefpipe.judge.template import TEMPLATES_DIR, load_template

    prompts = {p.stem: load_template(p).version for p in sorted(TEMPLATES_DIR.glob("judge*.txt"))}
    return CurrentVersions(load_guidelines(Path(guidelines_dir) if guidelines_dir else None).version, prompts)


def last_run_versions(instance: dg.DagsterInstance, batch_ids: list[str], *, this_run: str | None = None) -> dict[str, str | None]:
    """Batch -> the guideline version its latest ai_labels materialization ran under (the asset's
    `guideline_version` metadata, else Dagster's recorded input data version of `guidelines`).

    A run that stopped after ai_labels but before preference_dataset left the later stages built
    under the previous labels: its version is returned with a note, so it never counts as current
    (except for `this_run`, the calling run, which is still on its way to the export)."""
    def latest(asset: str, batch_id: str):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[batch_id]), limit=1).records
        return records[0] if records else None

    out: dict[str, str | None] = {}
    for batch_id in batch_ids:
        record = latest("ai_labels", batch_id)
        if record is None:
            out[batch_id] = None
            continue
        materialization = record.asset_materialization
        entry = materialization.metadata.get("guideline_version")
        value = getattr(entry, "value", None) if entry is not None else None
        version = str(value) if value else (materialization.tags or {}).get("dagster/input_data_version/guidelines")
        last = latest(LAST_STAGE, batch_id)
        if record.run_id != this_run and (last is None or last.storage_id < record.storage_id):
            version = f"{version} (that run stopped before {LAST_STAGE})"
        out[batch_id] = version
    return out


RECORD_COMMAND = "prefpipe stale --record"
"""The `prefpipe/command` tag of the check-only runs `prefpipe stale --record` makes: not attempts to build a batch."""


def last_attempt(instance: dg.DagsterInstance, batch_id: str) -> dg.DagsterRun | None:
    """The batch's latest run that tried to build it (check-only `prefpipe stale --record` runs left out)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}), limit=20)
    return next((run for run in runs if run.tags.get("prefpipe/command") != RECORD_COMMAND), None)


def never_completed(instance: dg.DagsterInstance, batch_ids: list[str], *, this_run: str | None = None) -> dict[str, str]:
    """Batch -> how its last run ended, for the batches no run has completed (no materialization
    of the last stage on record) whose last run failed or was canceled; `this_run` is never one."""
    out: dict[str, str] = {}
    for batch_id in batch_ids:
        done = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(LAST_STAGE), asset_partitions=[batch_id]), limit=1)
        if done.records:
            continue
        run = last_attempt(instance, batch_id)
        if run is None or run.run_id == this_run or run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            continue
        failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1).records
        step = failure[0].event_log_entry.step_key if failure else None
        ended = "failed" + (f" at {step}" if step else "") if run.status == dg.DagsterRunStatus.FAILURE else "was canceled"
        out[batch_id] = f"its last run ({run.run_id}) {ended}; fix what it said, then prefpipe run --batch {batch_id}"
    return out


def compute_view(instance: dg.DagsterInstance, *, database: str | Path | None = None, guidelines_dir: str | Path | None = None,
                 batch_id: str | None = None, include_current: bool = False, this_run: str | None = None) -> tuple[pd.DataFrame, list[str], CurrentVersions]:
    """(the stale view, the batches it covers, the current versions) for the whole warehouse or one
    batch; `this_run`: the id of the run asking, if any (see last_run_versions). The batches are
    those with rows in the warehouse and the registered ones whose runs never completed (a failed
    run leaves no rows), each of the latter with a row that says so (core.stale_view.NEVER_COMPLETED)."""
    from prefpipe.defs.partitions import batches as batch_partitions

    current = current_versions(guidelines_dir)
    tables = read_warehouse(database, batch_id=batch_id)
    in_warehouse = warehouse_batches(tables) if batch_id is None else [batch_id]
    candidates = sorted(set(in_warehouse) | set(instance.get_dynamic_partitions(batch_partitions.name))) if batch_id is None else in_warehouse
    never = never_completed(instance, candidates, this_run=this_run)
    batches = sorted(set(in_warehouse) | set(never))
    view = stale_view(
        {k: v for k, v in tables.items() if k in ("ai_labels", "human_annotations")},
        last_run_versions(instance, [b for b in batches if b not in never], this_run=this_run), current,
        cost_ledger=tables.get("cost_report"), final_label_counts=tables["final_label_counts"],
        include_current=include_current, never_completed=never,
    )
    return view, batches, current


def check_result_for(view: pd.DataFrame, batch_id: str, current: CurrentVersions) -> tuple[bool, dict]:
    """(passed, metadata) of the stale-batch check for one batch: it fails when a rerun would
    relabel or rebuild something (stale_batch_ids); human labels kept under older versions are
    reported, never failed on."""
    from prefpipe.reports.markdown import table_md

    rows = view[view["batch_id"] == batch_id]
    passed = batch_id not in batches_to_rerun(rows)
    kept = rows[rows["stage"] == "human_annotations"]
    shown = rows[["stage", "n_labels", "n_stale", "stale_guideline_versions", "stale_judge_prompt_versions", "n_gold_stale", "estimated_cost_usd", "action"]]
    metadata = {
        "current_guideline_version": current.guideline,
        "current_judge_prompts": ", ".join(current.judge_prompts.values()) or "none",
        "stale_stages": dg.MetadataValue.md(table_md(shown, floatfmt=".2f")),
        "relabel_cost_usd": float(rows.loc[rows["stage"] == "ai_labels", "estimated_cost_usd"].sum()),
        "human_labels_under_older_versions": int(kept["n_stale"].sum()),
        "gold_answers_under_older_versions": int(kept["n_gold_stale"].sum()),
        "what_to_do": "up to date" if passed else f"prefpipe backfill --batch {batch_id}  (or prefpipe backfill --stale)",
    }
    return passed, metadata
