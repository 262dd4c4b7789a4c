"""`prefpipe status`: how far each batch has come. Three sources, each named in the output: the
warehouse (what the batch's last run made final; prefpipe.core.batch_status), the annotation store
(labels answered in the app since, live) and the Dagster instance (the last run, the last publish,
and whether the batch is stale under the current guidelines)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg


def _last_run(instance: dg.DagsterInstance, batch_id: str) -> dict[str, Any] | None:
    """The batch's latest run of the pipeline: id, status, start time (UTC, ISO)."""
    import datetime as dt

    import dagster as dg

    runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": batch_id}), limit=1)
    if not runs:
        return None
    record = runs[0]
    started = record.start_time or record.create_timestamp.timestamp()
    return {"run_id": record.dagster_run.run_id, "status": record.dagster_run.status.value,
            "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds")}


def _published_rows(instance: dg.DagsterInstance, batch_id: str) -> int | None:
    """Rows of the batch's latest publish (published_dataset's metadata), None if never published."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("published_dataset"), asset_partitions=[batch_id]), limit=5).records
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        if "rows" in metadata and metadata["rows"].value:
            return int(metadata["rows"].value)
    return None


def _stale(instance: dg.DagsterInstance) -> set[str]:
    from prefpipe.core.stale_view import batches_to_rerun
    from prefpipe.defs.stale_view import compute_view

    view, _, _ = compute_view(instance)
    return set(batches_to_rerun(view))


def _store_progress() -> tuple[dict[str, dict[str, Any]], str | None]:
    """The app's queue per batch (live), or why the store could not be read."""
    from prefpipe.annotate.store import AnnotationStore
    from prefpipe.errors import PrefpipeError

    try:
        with AnnotationStore() as store:
            return {row["batch_id"]: row for row in store.queue_progress()}, None
    except (PrefpipeError, OSError) as exc:
        return {}, str(exc)


def collect(batch_id: str | None) -> dict[str, Any]:
    """Every batch's status (or one's), as `--json` prints it."""
    import dagster as dg

    from prefpipe.core import batches as batch_folders
    from prefpipe.core import settings
    from prefpipe.core.batch_status import batch_progress
    from prefpipe.core.warehouse import present_tables, read_only

    with read_only() as con:
        progress = batch_progress(con, schema=settings.WAREHOUSE_SCHEMA, batch_id=batch_id) if con is not None else {}
        rows = {}
        if con is not None and "preference_dataset" in present_tables(con):
            where = "WHERE batch_id = $b" if batch_id else ""
            rows = dict(con.execute(f"SELECT batch_id, count(*) FROM {settings.WAREHOUSE_SCHEMA}.preference_dataset {where} GROUP BY ALL",
                                    {"b": batch_id} if batch_id else {}).fetchall())
    queue, store_problem = _store_progress()
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions("batches"))
        ids = [batch_id] if batch_id else sorted(set(batch_folders.list_batches()) | known | set(progress))
        stale = _stale(instance) if ids else set()
        out = []
        for b in ids:
            p = progress.get(b)
            q = queue.get(b)
            out.append({
                "batch_id": b,
                "registered": b in known,
                "last_run": _last_run(instance, b),
                "stale": b in stale,
                "warehouse": p.as_dict() if p is not None else None,
                "dataset_rows": int(rows.get(b, 0)),
                "published_rows": _published_rows(instance, b),
                "app_queue": {k: q[k] for k in ("items", "labels_wanted", "answered", "skipped", "in_flight", "complete", "waiting")} if q else None,
            })
    return {"batches": out, "store_problem": store_problem}


def _print(status: dict[str, Any]) -> None:
    from prefpipe.core.batch_status import BatchProgress, waiting_text

    if not status["batches"]:
        print("no batch yet: put one under data/batches/<id>/ (README: Your own batch), then prefpipe run --batch <id>")
    for s in status["batches"]:
        run = s["last_run"]
        when = f"last run {run['started_at']} {run['status']}" if run else "never run"
        state = "" if not run else ("; stale under the current guidelines (prefpipe stale)" if s["stale"] else "; up to date")
        print(f"\n{s['batch_id']}: {when}{state}")
        w = s["warehouse"]
        if w is None:
            print("  nothing in the warehouse yet" + ("" if run else f" (prefpipe run --batch {s['batch_id']})"))
        else:
            progress = BatchProgress(w["batch_id"], w["pairs"], w["routes"], w["final"], w["waiting"])
            routes = ", ".join(f"{k} {v}" for k, v in progress.routes.items() if v)
            print(f"  pairs              {progress.pairs}" + (f" ({routes})" if routes else ""))
            print(f"  accepted AI labels {progress.accepted_ai}")
            print(f"  waiting for people {waiting_text(progress)}")
            print(f"  final labels       {progress.final_labels} (" + ", ".join(f"{k} {v}" for k, v in progress.final.items()) + ")")
        print(f"  dataset rows       {s['dataset_rows']}; published rows {s['published_rows'] if s['published_rows'] is not None else 'none yet'}")
        q = s["app_queue"]
        if q:
            print(f"  in the app now     {q['answered']} of {q['labels_wanted']} label(s) answered, {q['complete']} of {q['items']} pair(s) complete"
                  f", {q['in_flight']} in flight" + (" -> the next run makes them final" if q["answered"] and w is not None else ""))
    if status["store_problem"]:
        print(f"\nannotation store not read: {status['store_problem']}", file=sys.stderr)


def _status(args: argparse.Namespace) -> int:
    from prefpipe.cli.pipeline import ensure_dagster_home

    ensure_dagster_home()
    status = collect(args.batch)
    if args.batch and not any(s["registered"] or s["warehouse"] or s["last_run"] for s in status["batches"]):
        from prefpipe.core import batches as batch_folders

        if args.batch not in batch_folders.list_batches():
            print(f"no batch {args.batch!r}: no batch folder, no run, nothing in the warehouse", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(status, indent=1))
    else:
        _print(status)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="how far each batch has come: pairs, accepted AI labels, pairs waiting for people, final labels, published rows",
                            description="Per batch: pairs, accepted AI labels, pairs waiting for people with labels received of wanted, "
                                        "final labels, dataset and published rows, the last run and whether it is stale; "
                                        "and what the annotation app has received since.")
    status.add_argument("--batch", metavar="ID", default=None, help="only this batch (default: every batch)")
    status.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")
    status.set_defaults(handler=_status)
