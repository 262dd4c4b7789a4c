"""`prefpipe sql "SELECT ..."`: a read-only query against whichever warehouse is configured (the
DuckDB file, or the lakehouse of PREFPIPE_WAREHOUSE), so users and scripts need not know the
backend. The connection is read-only: a statement that writes is refused by the warehouse itself."""

from __future__ import annotations

import argparse
import sys


def _sql(args: argparse.Namespace) -> int:
    import duckdb

    from prefpipe.core.warehouse import read_only, target
    from prefpipe.errors import PrefpipeError

    try:
        where = target()
        with read_only() as con:
            if con is None:
                print(f"no warehouse yet at {where.display} (prefpipe run --batch ID makes it)", file=sys.stderr)
                return 2
            frame = con.execute(args.query).fetchdf()
    except PrefpipeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"query failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(frame.to_json(orient="records", date_format="iso", indent=1))
    else:
        print(frame.to_string(index=False) if len(frame) else "(no rows)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sql = sub.add_parser(
        "sql", help="run a read-only SQL query against the configured warehouse (DuckDB file or lakehouse)",
        description="Run one read-only SQL query against whichever warehouse is configured (the DuckDB file, or the "
                    "lakehouse of PREFPIPE_WAREHOUSE) and print the result; a statement that writes is refused.")
    sql.add_argument("query", metavar="QUERY", help='the query, e.g. "select count(*) from final_labels"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default %(default)s)")
    sql.set_defaults(handler=_sql)
