"""`prefpipe backfill`: one command that reruns exactly the stale batches (or chosen ones) as a real
Dagster backfill of the `pipeline` job, launched the way the UI's "Launch backfill" does, and
follows its runs."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prefpipe.cli.stale import JOB_NAME, user_errors
from prefpipe.core.stale_view import batches_to_rerun
from prefpipe.errors import PrefpipeError

if TYPE_CHECKING:
    import dagster as dg

PARTITION_SET = f"{JOB_NAME}_partition_set"
REPOSITORY = "__repository__"
DEFAULT_LOCATION = "prefpipe"
WEBSERVER = "http://127.0.0.1:3000"
BACKFILL_TAG = "dagster/backfill"


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


class BackfillError(PrefpipeError):
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


@user_errors
def _backfill(args: argparse.Namespace) -> int:
    from prefpipe.cli.pipeline import ensure_dagster_home

    home = ensure_dagster_home()
    import dagster as dg

    from prefpipe.core import batches as batch_folders, settings
    from prefpipe.defs.partitions import batches

    with dg.DagsterInstance.get() as instance:
        if args.watch:
            return 0 if watch_backfill(instance, args.watch, timeout=args.timeout) else 1
        on_disk = set(batch_folders.list_batches())
        if args.stale:
            from prefpipe.defs.stale_view import compute_view

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
    bf = sub.add_parser(
        "backfill", help="launch a Dagster backfill of the pipeline job over stale or chosen batches",
        description="Launch a real Dagster backfill of the `pipeline` job, as the UI's \"Launch backfill\" does, over the "
                    "batches `prefpipe stale` lists (--stale) or the ones named; the daemon of `dg dev` runs it. Or follow "
                    "a launched one (--watch).")
    which = bf.add_mutually_exclusive_group(required=True)
    which.add_argument("--stale", action="store_true", help="exactly the batches `prefpipe stale` lists as stale")
    which.add_argument("--batch", action="append", default=[], metavar="ID", help="batch id (repeatable)")
    which.add_argument("--watch", metavar="BACKFILL_ID", help="follow a launched backfill until its runs finish")
    bf.add_argument("--dry-run", action="store_true", help="list what would be launched, launch nothing")
    bf.add_argument("--wait", action="store_true", help="after launching, follow the runs until they finish (exit 1 if one fails)")
    bf.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="seconds --wait/--watch follow the runs at most (default: until they finish)")
    bf.add_argument("--webserver", metavar="URL",
                    help=f"send the launch to a running webserver (e.g. {WEBSERVER}) instead of loading the workspace here")
    bf.add_argument("--workspace", type=Path, metavar="FILE", help="workspace file of the code location (default: ./workspace.yaml)")
    bf.add_argument("--location", metavar="NAME", help=f"code location name (default: the workspace's, or {DEFAULT_LOCATION!r})")
    bf.set_defaults(handler=_backfill)
