"""The `prefpipe` command: the user's entry point outside the Dagster UI.

Each concept registers its own subcommands from its own module (a `register(subparsers)`
function), and every handler imports its heavy dependencies lazily so `prefpipe --help` and
small commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "prefpipe.cli.pipeline",
    "prefpipe.cli.status",
    "prefpipe.cli.annotators",
    "prefpipe.cli.exports",
    "prefpipe.cli.judge",
    "prefpipe.cli.generate",
    "prefpipe.cli.stale",
    "prefpipe.cli.backfill",
    "prefpipe.cli.sql",
    "prefpipe.cli.store",
    "prefpipe.cli.datasets",
)
"""Modules that add subcommands; each defines `register(subparsers) -> None`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefpipe",
        description="Pairwise preference data for RLHF, reward models and DPO.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from prefpipe.errors import PrefpipeError

    try:
        return int(args.handler(args) or 0)
    except PrefpipeError as exc:  # a setting or input the user can fix: the message says what and where
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
