"""`prefpipe datasets`: the published versions of a batch's dataset (prefpipe.core.dataset_versions),
newest first, and any of them written again exactly as it was published."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _export_dir(batch_id: str) -> Path:
    from prefpipe.core import settings

    return settings.exports_dir() / batch_id


def _change(version) -> str:
    """What changed since the version before, in one short line."""
    change = version.change
    if version.previous is None:
        return "first version"
    if change is None:
        return f"since {version.previous}: not known (its files are gone)"
    text = f"+{change.added:,} -{change.removed:,} pairs, {change.labels_changed:,} label(s) changed"
    return text + (f", {change.otherwise_changed:,} row(s) otherwise changed" if change.otherwise_changed else "") + f" since {change.previous}"


def _history(args: argparse.Namespace) -> int:
    from prefpipe.cli.exports import batch_id_error
    from prefpipe.core.dataset_versions import history

    if (problem := batch_id_error(args.batch)) is not None:
        print(problem, file=sys.stderr)
        return 2
    versions = list(reversed(history(_export_dir(args.batch))))
    if args.json:
        print(json.dumps([v.record() for v in versions], ensure_ascii=False, indent=1))
        return 0
    if not versions:
        print(f"batch {args.batch!r}: no published version under {_export_dir(args.batch)} "
              "(a run publishes one once a pair is complete)")
        return 0
    print(f"batch {args.batch!r}: {len(versions)} version(s), newest first ({_export_dir(args.batch) / 'versions'})")
    for v in versions:
        print(f"  {v.version}  {v.published_at}  {v.rows:>9,} rows  {_change(v)}")
        print(f"  {'':16}  run {v.run_id}; guideline {', '.join(v.guideline_versions) or 'none'}; "
              f"judge prompt {', '.join(v.judge_prompt_versions) or 'none'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from prefpipe.cli.exports import batch_id_error
    from prefpipe.core.dataset_versions import export_version

    if (problem := batch_id_error(args.batch)) is not None:
        print(problem, file=sys.stderr)
        return 2
    found, written = export_version(_export_dir(args.batch), args.version, Path(args.out))
    print(f"version {found.version} of batch {args.batch!r} (published at {found.published_at}, {found.rows:,} rows), "
          f"byte for byte as published:")
    for path in written:
        print(f"  {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    datasets = sub.add_parser("datasets", help="list the published versions of a batch's dataset, or write one again exactly",
                              description="Every publish of a batch's dataset is a version (a content hash): list them with what changed, "
                                          "or write an earlier one again byte for byte.")
    commands = datasets.add_subparsers(dest="datasets_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("history", help="the batch's published versions, newest first, with what changed each time",
                                  description="The batch's published versions, newest first: content hash, when, rows, the guideline and "
                                              "judge prompt versions, and pairs added, removed and relabelled since the previous one.")
    listing.add_argument("--batch", required=True, metavar="ID", help="the batch (its folder name under data/batches/)")
    listing.add_argument("--json", action="store_true", help="print the version records as JSON (default: a table)")
    listing.set_defaults(handler=_history)
    again = commands.add_parser("export", help="write a published version's train.parquet, train.jsonl and card again, byte for byte",
                                description="Write a published version's train.parquet, train.jsonl and README.md again, byte for byte "
                                            "as they were published (checked against their recorded SHA-256).")
    again.add_argument("--batch", required=True, metavar="ID", help="the batch (its folder name under data/batches/)")
    again.add_argument("--version", required=True, metavar="HASH", help="the version (as `prefpipe datasets history` shows it, or its first 4+ hex digits)")
    again.add_argument("--out", required=True, metavar="PATH", help="folder to write train.parquet, train.jsonl and README.md into (created if missing)")
    again.set_defaults(handler=_export)
