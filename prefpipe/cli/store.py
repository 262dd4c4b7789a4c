"""`prefpipe store`: the annotation store itself. `store migrate --to postgresql://...` copies the
store in use (PREFPIPE_ANNOTATION_STORE, else the SQLite file under the data folder) into a new
PostgreSQL database, the one step of moving a laptop's store to a team's server; `store info`
says which store is configured and what it holds."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("store", help="the annotation store: where it is, and moving it to PostgreSQL",
                       description="The annotation store the app, the CLI and the pipeline share: "
                                   "PREFPIPE_ANNOTATION_STORE, else data/annotations.sqlite3.")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    m = ssub.add_parser("migrate", help="copy the whole store (accounts, queue, gold, answers) into a new, empty store",
                        description="Copy the store in use (or --from) into a new, empty store, e.g. a laptop's SQLite "
                                    "file into a team's PostgreSQL database; the source is left as it was.")
    m.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://USER@HOST:PORT/DB (password from PGPASSWORD) or sqlite:///ABS/PATH")
    m.add_argument("--from", dest="source", metavar="URL",
                   help="the store to copy (default: PREFPIPE_ANNOTATION_STORE, else data/annotations.sqlite3)")
    m.set_defaults(handler=store_migrate)
    ssub.add_parser("info", help="which store is configured, its schema version and row counts",
                    description="Print which annotation store is configured, its schema version and the rows of "
                                "each of its tables.").set_defaults(handler=store_info)


def store_migrate(args: argparse.Namespace) -> int:
    from prefpipe.annotate.store import AnnotationStore, configured_location, parse_location
    from prefpipe.annotate.store.copying import copy_store

    source_location = parse_location(args.source) if args.source else configured_location()
    if source_location.path is not None and not source_location.path.is_file():
        print(f"error: --from: no annotation store at {source_location.display}", file=sys.stderr)
        return 1
    with AnnotationStore(source_location) as source, AnnotationStore(args.to) as target:
        copied = copy_store(source, target)
        print(f"copied {source.display} -> {target.display}: "
              + ", ".join(f"{n} {table}" for table, n in copied.items() if table != "meta"))
    print(f"next: export PREFPIPE_ANNOTATION_STORE={target.display} for the app, the CLI and the pipeline")
    return 0


def store_info(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from prefpipe.annotate.store import SCHEMA_VERSION, AnnotationStore, tables

    with AnnotationStore() as store, store.engine.connect() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in tables.COPY_ORDER if t is not tables.meta}
    print(f"store: {store.display} (schema version {SCHEMA_VERSION})")
    print(", ".join(f"{n} {name}" for name, n in counts.items()))
    return 0
