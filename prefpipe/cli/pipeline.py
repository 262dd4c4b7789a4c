"""`prefpipe run` and `prefpipe batches`: run the pipeline on batches from the command line, recorded
in the same Dagster instance the UI shows."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DAGSTER_HOME_DEFAULT = ".dagster_home"


def ensure_dagster_home() -> Path:
    """Use $DAGSTER_HOME, or ./.dagster_home, made absolute and lasting, with the project's
    dagster.yaml linked into it so the UI and the command line share runs and partitions."""
    home = Path(os.environ.get("DAGSTER_HOME") or DAGSTER_HOME_DEFAULT).resolve()
    home.mkdir(parents=True, exist_ok=True)
    project_yaml = Path("dagster.yaml").resolve()
    target = home / "dagster.yaml"
    if project_yaml.is_file() and not target.exists() and home != project_yaml.parent:
        target.symlink_to(project_yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _warehouse_problem() -> str | None:
    """Why the configured warehouse cannot be opened (one line), or None: said before any run starts."""
    from prefpipe.core.warehouse import read_only
    from prefpipe.errors import PrefpipeError

    try:
        with read_only():
            return None
    except PrefpipeError as exc:
        return str(exc)


def _run(args: argparse.Namespace) -> int:
    home = ensure_dagster_home()
    problem = _warehouse_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import dagster as dg

    from prefpipe.core import batches as batch_folders, settings
    from prefpipe.defs.partitions import batches

    on_disk = batch_folders.list_batches()
    wanted = on_disk if args.all else args.batch
    if not wanted:
        print(f"no batch to run (batch folders under {settings.batches_dir()}: {', '.join(on_disk) or 'none'})", file=sys.stderr)
        return 2
    missing = [b for b in wanted if b not in on_disk]
    if missing:
        print(f"no batch folder with a prompts.jsonl for {', '.join(missing)} under {settings.batches_dir()}", file=sys.stderr)
        return 2
    instance = dg.DagsterInstance.get()
    from prefpipe.defs.run_health import fail_runs_whose_process_died, process_tags

    for run_id in fail_runs_whose_process_died(instance):  # a killed run must not hold the queue or its half-written rows
        print(f"marked run {run_id} failed: its process is gone (the warehouse puts back what it wrote)", file=sys.stderr)
    known = set(instance.get_dynamic_partitions(batches.name))
    instance.add_dynamic_partitions(batches.name, [b for b in wanted if b not in known])
    failed = []
    for batch_id in wanted:
        print(f"running the pipeline on batch {batch_id!r} ...", flush=True)
        log_level = "INFO" if args.verbose else "CRITICAL"  # failures are printed below, without Dagster's traceback
        # execute_job, not execute_in_process: the latter keeps every step's output in memory until the
        # run ends (for the caller to inspect), which at a million pairs is every table at once
        with dg.execute_job(
            dg.reconstructable(pipeline_job), instance=instance, raise_on_error=False,
            tags={**process_tags(), "dagster/partition": batch_id},
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}, **judge_run_config(args.judge)},
        ) as result:
            if not result.success:
                failed.append(batch_id)
                for step, message in step_failures(result):
                    print(f"  {step} failed: {message}", file=sys.stderr)
    _summary(wanted, failed, home)
    return 1 if failed else 0


def judge_run_config(judge: str | None) -> dict:
    """The run config `--judge` stands for: none asks no judge; a model is asked, beside imported verdicts."""
    from prefpipe.core.batch_config import NO_JUDGE

    if judge is None:
        return {}
    config = {"run_judge": "never"} if judge == NO_JUDGE else {"run_judge": "always", "judges": [{"model": judge}]}
    return {"ops": {"ai_labels": {"config": config}}}


def pipeline_job():
    """The pipeline job, bound to this process's data folder; a module-level function so Dagster can
    rebuild it by name (dg.reconstructable) in the process that runs it."""
    from prefpipe.definitions import build_definitions

    return build_definitions().resolve_job_def("pipeline")


def step_failures(result) -> list[tuple[str, str]]:
    """(step, message) for each failed step, with the user's error rather than Dagster's wrapper."""
    out = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        described = data.user_failure_data.description if data.user_failure_data is not None else None
        if described:  # a dg.Failure (a PrefpipeError an asset turned into one): its description is the message
            out.append((event.step_key, described.strip()))
            continue
        error = data.error
        while error.cause is not None and (error.cls_name or "").startswith("Dagster"):  # unwrap to the user's error
            error = error.cause
        message = error.message.strip()
        if error.cls_name and message.split(":", 1)[0].endswith("." + error.cls_name):  # "pkg.mod.SomeError: text" -> "text"
            message = message.split(":", 1)[1].strip()
        out.append((event.step_key, message))
    return out


def _summary(wanted: list[str], failed: list[str], home: Path) -> None:
    from prefpipe.core import settings
    from prefpipe.core.warehouse import row_counts, target

    print()
    print(f"warehouse: {target().display}  (rows per table and batch)")
    counts = row_counts(wanted)
    if not counts.empty:
        print(counts.to_string())
    reports = settings.reports_dir()
    if reports.is_dir():
        for batch_id in wanted:
            for path in sorted(reports.glob(f"{batch_id}*")):
                print(f"report: {path}")
    exports = settings.exports_dir()
    if exports.is_dir():
        for batch_id in wanted:
            for path in sorted(exports.glob(f"{batch_id}*")):
                print(f"export: {path}")
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see the messages above)")
    print(f"\nOpen the UI:  DAGSTER_HOME={home} .venv/bin/dg dev   then http://127.0.0.1:3000")


def _list(args: argparse.Namespace) -> int:
    from prefpipe.core import batches as batch_folders, settings

    on_disk = batch_folders.list_batches()
    open_ids = set(batch_folders.open_batches())
    for batch_id in on_disk:
        print(f"{batch_id}\t{'open' if batch_id in open_ids else 'closed'}\t{settings.batch_dir(batch_id)}")
    if not on_disk:
        print(f"no batch folders under {settings.batches_dir()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run the whole pipeline on batches (recorded in the Dagster instance)",
        description="Run every stage of the pipeline on the batches named, one after the other, in the Dagster instance "
                    "of $DAGSTER_HOME (./.dagster_home when unset), so `dg dev` shows the runs. Prints the warehouse's "
                    "rows per table, the reports and exports written, and how to open the UI.")
    run.add_argument("--batch", action="append", default=[], metavar="ID",
                     help="batch id: its folder under data/batches/ (repeatable), e.g. demo")
    run.add_argument("--all", action="store_true", help="every batch folder under data/batches/")
    run.add_argument("--judge", metavar="MODEL", default=None,
                     help="'none': no AI judge, every pair goes to people; a model name: ask that judge (as well as any imported "
                          "verdicts); default: batch.json's `judge`, else the run config's")
    run.add_argument("--verbose", action="store_true", help="show Dagster's step-by-step log and tracebacks")
    run.set_defaults(handler=_run)
    ls = sub.add_parser("batches", help="list batch folders and whether they are open",
                        description="List the batch folders under data/batches/ (those with a prompts.jsonl), whether each "
                                    "is open (rerun every night) or closed (`\"closed\": true` in batch.json), and its path.")
    ls.set_defaults(handler=_list)
