"""`prefpipe stale`: which batches a guideline or judge prompt change left behind and what
relabelling them costs (the view of prefpipe.core.stale_view), and `--record` to run the stale-batch
check for every batch so the Dagster UI shows them. `prefpipe backfill` reruns them."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from prefpipe.core.stale_view import RUN_STAGE, batches_to_rerun, never_completed_batches
from prefpipe.defs.labelling.ai_labels import STALE_CHECK

if TYPE_CHECKING:
    import dagster as dg
    import pandas as pd

    from prefpipe.core.stale_view import CurrentVersions

JOB_NAME = "pipeline"


def run_stale_checks(instance: dg.DagsterInstance, batch_ids: list[str]) -> dict[str, bool]:
    """Run the ai_labels check `labels_under_current_versions` alone for each registered batch (a
    check-only subset of the pipeline job, about a second each), so the Dagster UI shows every stale
    batch failing without relabelling anything; batch -> passed.

    A real run per batch rather than a runless record: Dagster 1.13 stores one runless evaluation
    per check and partition only (a second one violates a unique index)."""
    import dagster as dg

    from prefpipe.definitions import build_definitions
    from prefpipe.defs.partitions import batches
    from prefpipe.defs.stale_view import RECORD_COMMAND

    key = dg.AssetCheckKey(dg.AssetKey("ai_labels"), STALE_CHECK)
    job = build_definitions().resolve_job_def(JOB_NAME).get_subset(asset_selection=set(), asset_check_selection={key})
    registered = set(instance.get_dynamic_partitions(batches.name))
    out = {}
    for batch_id in batch_ids:
        if batch_id not in registered:
            continue
        result = job.execute_in_process(partition_key=batch_id, instance=instance, raise_on_error=False,
                                        tags={"prefpipe/command": RECORD_COMMAND},
                                        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        out[batch_id] = all(e.passed for e in result.get_asset_check_evaluations()) and result.success
    return out


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

    from prefpipe.core import settings

    print(f"guidelines: {settings.guidelines_dir()}  version {current.guideline}")
    print(f"judge prompts: {', '.join(current.judge_prompts.values()) or 'none packaged'}")
    print(f"warehouse: {settings.warehouse_path()}")
    if not batch_ids:
        print("\nno batch in the warehouse yet (prefpipe run --batch <id>)")
        return
    rerun = set(batches_to_rerun(view))
    never = never_completed_batches(view)
    for batch_id in batch_ids:
        rows = view[view["batch_id"] == batch_id]
        if batch_id in never:
            print(f"\n{batch_id}: {never[batch_id]}")
            continue
        if batch_id in rerun:
            state = "STALE" + ("" if batch_id in folders else f"  (no batch folder under {settings.batches_dir()}: cannot rerun)")
        else:
            state = "up to date" + ("; human labels under older versions are kept" if len(rows) else "")
        print(f"\n{batch_id}: {state}")
        for r in rows.itertuples():
            if r.stage == RUN_STAGE:  # its size is the final labels a rerun rebuilds
                rebuilt = f"{int(r.n_labels):,} final label(s)" if pd.notna(r.n_labels) else "the batch (no final label yet)"
                print(f"  {r.stage:<18} {_made_under(r)}; a rerun rebuilds {rebuilt}")
            else:
                print(f"  {r.stage:<18} {_count(r.n_stale)} of {_count(r.n_labels)} label(s) stale, {_made_under(r)}; "
                      f"est. cost {'n/a' if pd.isna(r.estimated_cost_usd) else f'${r.estimated_cost_usd:.2f}'}")
            print(f"  {'':<18} -> {r.action}")
    ai_cost = float(view.loc[view["stage"].eq("ai_labels") & view["batch_id"].isin(rerun), "estimated_cost_usd"].sum())
    human = view[view["stage"].eq("human_annotations")]
    print(f"\n{len(rerun)} of {len(batch_ids)} batch(es) stale" + (f": {', '.join(sorted(rerun))}" if rerun else ""))
    if never:
        print(f"{len(never)} batch(es) never completed, nothing of them to be stale: {', '.join(sorted(never))}")
    if rerun:
        print(f"relabelling their AI labels costs about ${ai_cost:.2f} (labels answered from the LLM cache cost nothing)")
        print("rerun exactly these: prefpipe backfill --stale   (--dry-run to see what it launches)")
    if len(human):
        cost = human["estimated_cost_usd"].sum(min_count=1)
        print(f"{int(human['n_stale'].sum())} human label(s) made under older versions are kept and marked"
              f" ({int(human['n_gold_stale'].sum())} gold answer(s) among them); asking people again would cost about "
              + ("n/a (no human price in the cost ledger)" if cost != cost else f"${cost:.2f}"))


def user_errors(handler):
    """A missing or malformed guidelines folder is the user's to fix: say so, without a traceback."""

    def run(args: argparse.Namespace) -> int:
        from prefpipe.core.guidelines import GuidelinesError
        from prefpipe.errors import PrefpipeError

        try:
            return handler(args)
        except (GuidelinesError, PrefpipeError) as exc:
            print(str(exc), file=sys.stderr)
            return 2

    return run


@user_errors
def _stale(args: argparse.Namespace) -> int:
    from prefpipe.cli.pipeline import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from prefpipe.core import batches as batch_folders

    with dg.DagsterInstance.get() as instance:
        from prefpipe.defs.stale_view import compute_view

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


def register(sub: argparse._SubParsersAction) -> None:
    stale = sub.add_parser("stale", help="list batches made under an older guideline or judge prompt, and what relabelling costs",
                           description="Which batches a guideline or judge prompt change left behind (and which never completed), "
                                       "what relabelling them costs, and how to rerun exactly those (prefpipe backfill --stale).")
    stale.add_argument("--json", action="store_true", help="print the view as JSON records")
    stale.add_argument("--record", action="store_true",
                       help=f"also run the ai_labels check `{STALE_CHECK}` for every batch (about a second each), so the Dagster UI shows each stale batch failing")
    stale.set_defaults(handler=_stale)
