"""`prefpipe stale` and `prefpipe backfill`: which batches a guideline or judge prompt change left
behind, what relabelling them costs, and one command that reruns exactly those as a real Dagster
backfill of the `pipeline` job.

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

The view is prefpipe.staleness's (counted in DuckDB) plus a `last_run` stage from the instance;
the asset checks in prefpipe.checks use the same functions, so the command and the UI agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg
    import pandas as pd

RUN_STAGE = "last_run"
RUN_ACTION = "rerun under the current guidelines: routing, reliability, final labels, reports and exports rebuilt"
NO_RUN_RECORDED = "(no run recorded in this Dagster instance)"
CURRENT_PROMPT = "(current)"
"""Stands for "the current version of this label's own judge template" (judges may use different templates)."""
LAST_STAGE = "preference_dataset"
"""The pipeline's last stage: a run that materialized it after ai_labels rebuilt the whole batch."""
STALE_CHECK = "labels_under_current_versions"
"""The partitioned check on ai_labels that fails (WARN) for a stale batch (prefpipe.checks)."""
JOB_NAME = "pipeline"
PARTITION_SET = f"{JOB_NAME}_partition_set"
REPOSITORY = "__repository__"
DEFAULT_LOCATION = "prefpipe"
WEBSERVER = "http://127.0.0.1:3000"
BACKFILL_TAG = "dagster/backfill"


# ------------------------------------------------------------------------------------------------
# the view


@dataclass(frozen=True)
class CurrentVersions:
    guideline: str
    judge_prompts: Mapping[str, str]
    """Packaged judge template name -> its current version ("judge_v1" -> "judge_v1@02552c692bba")."""


def current_versions() -> CurrentVersions:
    """The guideline version of the files under data/guidelines/ and of every packaged judge template."""
    from prefpipe.guidelines import load_guidelines
    from prefpipe.judge.template import TEMPLATES_DIR, load_template

    prompts = {p.stem: load_template(p).version for p in sorted(TEMPLATES_DIR.glob("judge*.txt"))}
    return CurrentVersions(load_guidelines().version, prompts)


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
    from prefpipe.imports import EXTERNAL_PROMPT_VERSION

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
) -> pd.DataFrame:
    """One row per batch and stage with stale rows (prefpipe.staleness.STALE_BATCHES columns).

    `tables`: warehouse rows (with batch_id) of ai_labels and human_annotations; `last_run_versions`:
    batch -> the guideline version its last ai_labels materialization recorded (None: no run
    recorded); `final_label_counts`: batch -> final labels a rerun rebuilds (shown as the last_run
    stage's size)."""
    import numpy as np
    import pandas as pd

    from prefpipe.staleness import STALE_BATCHES, STAGES, stale_batches

    frames = own_labels(tables)
    ai = frames.get("ai_labels")
    if ai is not None:
        current_prompt = prompt_is_current(ai["judge_prompt_version"], current.judge_prompts)
        frames["ai_labels"] = ai.assign(judge_prompt_version=ai["judge_prompt_version"].astype("string").where(~current_prompt, CURRENT_PROMPT))
    view = stale_batches(frames, current.guideline, CURRENT_PROMPT, cost_ledger, include_current=include_current)

    counts = dict(final_label_counts or {})
    batches = sorted(last_run_versions)
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
    out = pd.concat([view, runs.astype(STALE_BATCHES)], ignore_index=True)
    order = {RUN_STAGE: -1, **{s.table: i for i, s in enumerate(STAGES)}}
    out = out.assign(_o=out["stage"].map(order)).sort_values(["batch_id", "_o"], kind="stable").drop(columns="_o")
    return out.reset_index(drop=True).astype(STALE_BATCHES)


def batches_to_rerun(view: pd.DataFrame) -> list[str]:
    """Batches a backfill should rerun: stale rows that a rerun relabels or rebuilds
    (staleness.stale_batch_ids), and every batch whose last run used older guidelines, even one
    that left no final label to count."""
    from prefpipe.staleness import stale_batch_ids

    runs = view[(view["stage"] == RUN_STAGE) & view["stale_guideline_versions"].notna()]
    return sorted(set(stale_batch_ids(view)) | set(runs["batch_id"].astype(str)))


# ------------------------------------------------------------------------------------------------
# reading the warehouse and the instance


WAREHOUSE_COLUMNS = {
    "ai_labels": "batch_id, guideline_version, judge_prompt_version, cost_usd",
    "human_annotations": "batch_id, label, is_gold, source, guideline_version",
    "cost_report": "batch_id, section, item, unit_usd",
}


def read_warehouse(database: str | Path | None = None, *, batch_id: str | None = None) -> dict:
    """What the view needs, in one short read-only connection: the label tables' version columns,
    the cost ledger, and final labels per batch ({"final_label_counts": {batch: n}})."""
    from prefpipe.settings import WAREHOUSE_SCHEMA
    from prefpipe.warehouse import present_tables, read_only

    out: dict = {"final_label_counts": {}}
    with read_only(database) as con:
        if con is None:
            return out
        present = present_tables(con)
        where, params = ("WHERE batch_id = ?", [batch_id]) if batch_id is not None else ("", [])
        for table, columns in WAREHOUSE_COLUMNS.items():
            if table in present:
                out[table] = con.execute(f"SELECT {columns} FROM {WAREHOUSE_SCHEMA}.{table} {where}", params).df()
        if "final_labels" in present:
            rows = con.execute(f"SELECT batch_id, count(*) FROM {WAREHOUSE_SCHEMA}.final_labels {where} GROUP BY batch_id", params).fetchall()
            out["final_label_counts"] = {str(b): int(n) for b, n in rows}
    return out


def warehouse_batches(tables: Mapping) -> list[str]:
    """Batches with label rows or final labels in the warehouse."""
    found = set(tables.get("final_label_counts", {}))
    for name in ("ai_labels", "human_annotations"):
        if name in tables:
            found |= set(tables[name]["batch_id"].dropna().astype(str))
    return sorted(found)


def last_run_versions(instance: dg.DagsterInstance, batch_ids: list[str], *, this_run: str | None = None) -> dict[str, str | None]:
    """Batch -> the guideline version its latest ai_labels materialization ran under (the asset's
    `guideline_version` metadata, else Dagster's recorded input data version of `guidelines`).

    A run that stopped after ai_labels but before preference_dataset left the later stages built
    under the previous labels: its version is returned with a note, so it never counts as current
    (except for `this_run`, the calling run, which is still on its way to the export)."""
    import dagster as dg

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


def compute_view(instance: dg.DagsterInstance, *, database: str | Path | None = None, batch_id: str | None = None,
                 include_current: bool = False, this_run: str | None = None) -> tuple[pd.DataFrame, list[str], CurrentVersions]:
    """(the stale view, the batches in the warehouse, the current versions) for the whole warehouse
    or one batch; `this_run`: the id of the run asking, if any (see last_run_versions)."""
    current = current_versions()
    tables = read_warehouse(database, batch_id=batch_id)
    batches = warehouse_batches(tables) if batch_id is None else [batch_id]
    view = stale_view(
        {k: v for k, v in tables.items() if k in ("ai_labels", "human_annotations")},
        last_run_versions(instance, batches, this_run=this_run), current,
        cost_ledger=tables.get("cost_report"), final_label_counts=tables["final_label_counts"],
        include_current=include_current,
    )
    return view, batches, current


def check_result_for(view: pd.DataFrame, batch_id: str, current: CurrentVersions) -> tuple[bool, dict]:
    """(passed, metadata) of the stale-batch check for one batch: it fails when a rerun would
    relabel or rebuild something (stale_batch_ids); human labels kept under older versions are
    reported, never failed on."""
    import dagster as dg

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


def run_stale_checks(instance: dg.DagsterInstance, batch_ids: list[str]) -> dict[str, bool]:
    """Run the ai_labels check `labels_under_current_versions` alone for each registered batch (a
    check-only subset of the pipeline job, about a second each), so the Dagster UI shows every stale
    batch failing without relabelling anything; batch -> passed.

    A real run per batch rather than a runless record: Dagster 1.13 stores one runless evaluation
    per check and partition only (a second one violates a unique index)."""
    import dagster as dg

    from prefpipe.definitions import build_definitions
    from prefpipe.partitions import batches

    key = dg.AssetCheckKey(dg.AssetKey("ai_labels"), STALE_CHECK)
    job = build_definitions().resolve_job_def(JOB_NAME).get_subset(asset_selection=set(), asset_check_selection={key})
    registered = set(instance.get_dynamic_partitions(batches.name))
    out = {}
    for batch_id in batch_ids:
        if batch_id not in registered:
            continue
        result = job.execute_in_process(partition_key=batch_id, instance=instance, raise_on_error=False,
                                        tags={"prefpipe/command": "prefpipe stale --record"},
                                        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        out[batch_id] = all(e.passed for e in result.get_asset_check_evaluations()) and result.success
    return out


# ------------------------------------------------------------------------------------------------
# prefpipe stale


def _count(value) -> str:
    import pandas as pd

    return "?" if pd.isna(value) else f"{int(value):,}"


def _made_under(row) -> str:
    import pandas as pd

    parts = []
    if pd.notna(row.stale_guideline_versions):
        parts.append(f"guideline {row.stale_guideline_versions}")
    if pd.notna(row.stale_judge_prompt_versions):
        parts.append(f"judge prompt {row.stale_judge_prompt_versions}")
    if row.n_gold_stale:
        parts.append(f"{int(row.n_gold_stale)} gold answer(s) among them")
    return "made under " + ", ".join(parts) if parts else "all current"


def _print_view(view: pd.DataFrame, batch_ids: list[str], current: CurrentVersions, folders: set[str]) -> None:
    import pandas as pd

    from prefpipe import settings

    print(f"guidelines: {settings.guidelines_dir()}  version {current.guideline}")
    print(f"judge prompts: {', '.join(current.judge_prompts.values()) or 'none packaged'}")
    print(f"warehouse: {settings.warehouse_path()}")
    if not batch_ids:
        print("\nno batch in the warehouse yet (prefpipe run --batch <id>)")
        return
    rerun = set(batches_to_rerun(view))
    for batch_id in batch_ids:
        rows = view[view["batch_id"] == batch_id]
        if batch_id in rerun:
            state = "STALE" + ("" if batch_id in folders else f"  (no batch folder under {settings.batches_dir()}: cannot rerun)")
        else:
            state = "up to date" + ("; human labels under older versions are kept" if len(rows) else "")
        print(f"\n{batch_id}: {state}")
        for r in rows.itertuples():
            print(f"  {r.stage:<18} {_count(r.n_stale)} of {_count(r.n_labels)} label(s) stale, {_made_under(r)}; "
                  f"est. cost {'n/a' if pd.isna(r.estimated_cost_usd) else f'${r.estimated_cost_usd:.2f}'}")
            print(f"  {'':<18} -> {r.action}")
    ai_cost = float(view.loc[view["stage"].eq("ai_labels") & view["batch_id"].isin(rerun), "estimated_cost_usd"].sum())
    human = view[view["stage"].eq("human_annotations")]
    print(f"\n{len(rerun)} of {len(batch_ids)} batch(es) stale" + (f": {', '.join(sorted(rerun))}" if rerun else ""))
    if rerun:
        print(f"relabelling their AI labels costs about ${ai_cost:.2f} (labels answered from the LLM cache cost nothing)")
        print("rerun exactly these: prefpipe backfill --stale   (--dry-run to see what it launches)")
    if len(human):
        cost = human["estimated_cost_usd"].sum(min_count=1)
        print(f"{int(human['n_stale'].sum())} human label(s) made under older versions are kept and marked"
              f" ({int(human['n_gold_stale'].sum())} gold answer(s) among them); asking people again would cost about "
              + ("n/a (no human price in the cost ledger)" if cost != cost else f"${cost:.2f}"))


def _user_errors(handler):
    """A missing or malformed guidelines folder is the user's to fix: say so, without a traceback."""

    def run(args: argparse.Namespace) -> int:
        from prefpipe.guidelines import GuidelinesError

        try:
            return handler(args)
        except (GuidelinesError, BackfillError) as exc:
            print(str(exc), file=sys.stderr)
            return 2

    return run


@_user_errors
def _stale(args: argparse.Namespace) -> int:
    from prefpipe.pipeline_cli import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from prefpipe import batches as batch_folders

    with dg.DagsterInstance.get() as instance:
        view, batch_ids, current = compute_view(instance)
        if args.json:
            print(view.to_json(orient="records", indent=1))
        else:
            _print_view(view, batch_ids, current, set(batch_folders.list_batches()))
        if args.record:
            ran = run_stale_checks(instance, batch_ids)
            if not args.json:
                print(f"ran the ai_labels check `{STALE_CHECK}` for {len(ran)} batch(es): the Dagster UI shows"
                      f" {sum(not ok for ok in ran.values())} failing (WARN)")
    return 0


# ------------------------------------------------------------------------------------------------
# prefpipe backfill

LAUNCH_MUTATION = """
mutation LaunchPartitionBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
  }
}
"""


class BackfillError(RuntimeError):
    """The backfill could not be launched (the message says why)."""


def workspace_location(workspace: Path | None) -> tuple[Path | None, str]:
    """(the workspace file to load, or None for prefpipe's default; the code location name).

    The backfill names a code location, which must be the one `dagster dev` serves (its daemon runs
    the backfill): the project's workspace.yaml when there is one, else prefpipe.definitions under
    the name the project's workspace.yaml gives it."""
    import yaml

    path = workspace or Path("workspace.yaml")
    if path.is_file():
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        locations = [next(iter(entry.values())) for entry in raw.get("load_from", [])]
        names = [loc.get("location_name") or loc.get("module_name") for loc in locations if isinstance(loc, dict)]
        return path.resolve(), (names[0] if names else DEFAULT_LOCATION)
    if workspace is not None:
        raise BackfillError(f"{workspace}: no such workspace file")
    return None, DEFAULT_LOCATION


def _graphql_here(query: str, variables: dict, workspace: Path | None) -> dict:
    """Run a GraphQL document against the workspace with `dagster-graphql`, in this process's
    instance ($DAGSTER_HOME): it loads the code location in a subprocess, as the UI would."""
    exe = Path(sys.executable).with_name("dagster-graphql")
    exe = exe if exe.is_file() else shutil.which("dagster-graphql")
    if exe is None:
        raise BackfillError("dagster-graphql not found beside this Python or on PATH (pip install dagster-graphql)")
    import yaml

    path, _ = workspace_location(workspace)
    with tempfile.TemporaryDirectory(prefix="prefpipe-backfill-") as tmp:
        out = Path(tmp) / "result.json"
        if path is None:
            path = Path(tmp) / "workspace.yaml"
            module = {"module_name": "prefpipe.definitions", "location_name": DEFAULT_LOCATION}
            path.write_text(yaml.safe_dump({"load_from": [{"python_module": module}]}), encoding="utf-8")
        try:
            done = subprocess.run([str(exe), "-w", str(path), "-t", query, "-v", json.dumps(variables), "-o", str(out)],
                                  capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired as exc:
            raise BackfillError("dagster-graphql did not answer within 10 minutes") from exc
        if not out.is_file():
            raise BackfillError(f"dagster-graphql failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        return json.loads(out.read_text(encoding="utf-8"))


def _graphql_remote(url: str, query: str, variables: dict) -> dict:
    """POST a GraphQL document to a running dagster-webserver (its public GraphQL endpoint)."""
    import httpx

    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=120) as client:
            if "dagster_webserver" not in client.get(f"{base}/server_info").text:
                raise BackfillError(f"{url} is not a dagster-webserver")
            response = client.post(f"{base}/graphql", json={"query": query, "variables": variables})
            response.raise_for_status()
            return response.json()
    except httpx.HTTPError as exc:
        raise BackfillError(f"{url}: {exc}") from exc


def launch_backfill(batch_ids: list[str], *, workspace: Path | None = None, webserver: str | None = None,
                    location: str | None = None, title: str | None = None) -> str:
    """Launch a backfill of the `pipeline` job over `batch_ids` and return its id.

    It sends the GraphQL mutation `launchPartitionBackfill` (what the UI's "Launch backfill" sends):
    to a running webserver when `webserver` is given, else with `dagster-graphql` against the
    workspace in this process's instance ($DAGSTER_HOME). The backfill is stored REQUESTED; the
    daemon of `dagster dev` (or `dagster-daemon run`) submits its runs, which dagster.yaml's run
    queue starts one at a time."""
    location_name = location or (DEFAULT_LOCATION if webserver else workspace_location(workspace)[1])
    params = {
        "selector": {"partitionSetName": PARTITION_SET,
                     "repositorySelector": {"repositoryLocationName": location_name, "repositoryName": REPOSITORY}},
        "partitionNames": list(batch_ids),
        "title": title or f"prefpipe backfill: {', '.join(batch_ids)}"[:200],
        "tags": [{"key": "prefpipe/command", "value": "prefpipe backfill"}],
    }
    variables = {"params": params}
    answer = _graphql_remote(webserver, LAUNCH_MUTATION, variables) if webserver else _graphql_here(LAUNCH_MUTATION, variables, workspace)
    result = (answer.get("data") or {}).get("launchPartitionBackfill") or {}
    if result.get("__typename") == "LaunchBackfillSuccess":
        return str(result["backfillId"])
    reason = result.get("message") or answer.get("errors") or "no answer"
    raise BackfillError(f"launchPartitionBackfill failed ({result.get('__typename', 'no result')}): {reason}")


def daemon_running(instance: dg.DagsterInstance, *, within_seconds: float = 120.0) -> bool:
    """Whether a Dagster daemon's backfill loop has checked in recently (else nothing runs a backfill)."""
    beat = instance.get_daemon_heartbeats().get("BACKFILL")
    return beat is not None and time.time() - beat.timestamp < within_seconds


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> dict[str, tuple[str, str]]:
    """Partition -> (run id, status) of the backfill's latest run per batch."""
    import dagster as dg

    out: dict[str, tuple[str, str]] = {}
    for record in sorted(instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})), key=lambda r: r.create_timestamp):
        run = record.dagster_run
        out[run.tags.get("dagster/partition", "?")] = (run.run_id, run.status.value)
    return out


FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def watch_backfill(instance: dg.DagsterInstance, backfill_id: str, *, timeout: float | None = None, poll: float = 2.0) -> bool:
    """Print the backfill's runs as they change until every batch's run has finished; True when all
    succeeded. Bounded by `timeout` seconds (None: until done)."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise BackfillError(f"no backfill {backfill_id!r} in the instance at {os.environ.get('DAGSTER_HOME')}")
    wanted = list(backfill.partition_names or [])
    deadline = None if timeout is None else time.monotonic() + timeout
    shown: dict[str, tuple[str, str]] = {}
    while True:
        runs = backfill_runs(instance, backfill_id)
        for batch_id, (run_id, status) in sorted(runs.items()):
            if shown.get(batch_id) != (run_id, status):
                print(f"  {batch_id}: {status.lower()}  (run {run_id[:8]})", flush=True)
        shown = runs
        status = instance.get_backfill(backfill_id).status.value
        if status in ("FAILED", "CANCELED") or (all(b in runs for b in wanted) and all(s in FINISHED for _, s in runs.values())):
            ok = status not in ("FAILED", "CANCELED") and all(runs.get(b, ("", ""))[1] == "SUCCESS" for b in wanted)
            print(f"backfill {backfill_id}: {'every batch succeeded' if ok else 'FAILED for ' + ', '.join(b for b in wanted if runs.get(b, ('', ''))[1] != 'SUCCESS')}")
            return ok
        if deadline is not None and time.monotonic() > deadline:
            print(f"backfill {backfill_id}: still running after {timeout:.0f}s (status {status.lower()})")
            return False
        time.sleep(poll)


@_user_errors
def _backfill(args: argparse.Namespace) -> int:
    from prefpipe.pipeline_cli import ensure_dagster_home

    home = ensure_dagster_home()
    import dagster as dg

    from prefpipe import batches as batch_folders, settings
    from prefpipe.partitions import batches

    with dg.DagsterInstance.get() as instance:
        if args.watch:
            return 0 if watch_backfill(instance, args.watch, timeout=args.timeout) else 1
        on_disk = set(batch_folders.list_batches())
        if args.stale:
            view, _, _ = compute_view(instance)
            stale = batches_to_rerun(view)
            wanted = [b for b in stale if b in on_disk]
            for b in sorted(set(stale) - on_disk):
                print(f"{b}: stale, but no batch folder under {settings.batches_dir()}: left out", file=sys.stderr)
        else:
            wanted = list(dict.fromkeys(args.batch))
            missing = [b for b in wanted if b not in on_disk]
            if missing:
                print(f"no batch folder with a prompts.jsonl for {', '.join(missing)} under {settings.batches_dir()}", file=sys.stderr)
                return 2
        if not wanted:
            print("nothing to backfill: every batch is up to date" if args.stale else "no batch given")
            return 0 if args.stale else 2
        registered = set(instance.get_dynamic_partitions(batches.name))
        new = [b for b in wanted if b not in registered]
        if args.dry_run:
            print(f"would launch a backfill of the `{JOB_NAME}` job over {len(wanted)} batch(es):")
            for b in wanted:
                print(f"  {b}" + ("  (registered as a batch partition first)" if b in new else ""))
            return 0
        if new:
            instance.add_dynamic_partitions(batches.name, new)
        backfill_id = launch_backfill(wanted, workspace=args.workspace, webserver=args.webserver, location=args.location)
        print(f"launched backfill {backfill_id}: the `{JOB_NAME}` job over {len(wanted)} batch(es): {', '.join(wanted)}")
        print(f"watch it: {args.webserver or WEBSERVER}/runs/b/{backfill_id}?tab=runs   or   prefpipe backfill --watch {backfill_id}")
        if not daemon_running(instance):
            print(f"note: no Dagster daemon is running for {home}; the runs start when it does: "
                  f"DAGSTER_HOME={home} dagster dev   (or dagster-daemon run)")
        if args.wait:
            return 0 if watch_backfill(instance, backfill_id, timeout=args.timeout) else 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    stale = sub.add_parser("stale", help="list batches made under an older guideline or judge prompt, and what relabelling costs")
    stale.add_argument("--json", action="store_true", help="print the view as JSON records")
    stale.add_argument("--record", action="store_true",
                       help=f"also run the ai_labels check `{STALE_CHECK}` for every batch (about a second each), so the Dagster UI shows each stale batch failing")
    stale.set_defaults(handler=_stale)

    bf = sub.add_parser("backfill", help="launch a Dagster backfill of the pipeline job over stale or chosen batches")
    which = bf.add_mutually_exclusive_group(required=True)
    which.add_argument("--stale", action="store_true", help="exactly the batches `prefpipe stale` lists as stale")
    which.add_argument("--batch", action="append", default=[], metavar="ID", help="batch id (repeatable)")
    which.add_argument("--watch", metavar="BACKFILL_ID", help="follow a launched backfill until its runs finish")
    bf.add_argument("--dry-run", action="store_true", help="list what would be launched, launch nothing")
    bf.add_argument("--wait", action="store_true", help="after launching, follow the runs until they finish (exit 1 if one fails)")
    bf.add_argument("--timeout", type=float, default=None, help="seconds --wait/--watch follow the runs at most")
    bf.add_argument("--webserver", metavar="URL", help=f"send the launch to a running webserver (e.g. {WEBSERVER}) instead of loading the workspace here")
    bf.add_argument("--workspace", type=Path, help="workspace file of the code location (default: ./workspace.yaml)")
    bf.add_argument("--location", help=f"code location name (default: the workspace's, or {DEFAULT_LOCATION!r})")
    bf.set_defaults(handler=_backfill)
