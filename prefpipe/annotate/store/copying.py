"""Copying a whole store into another, empty one: how a team moves its SQLite file to PostgreSQL
(`prefpipe store migrate --to postgresql://...`).

Everything moves, with its ids: accounts (token hashes, so every token and session keeps working),
batches, items with their gold keys and HTML, every assignment and answer, and the gold-slot
secret (so each annotator's task order and gold positions carry on unchanged). The source is
opened first, which upgrades it to the current schema version; the target is written in one
transaction and its row counts are checked against the source's before it commits, so a failed
copy leaves the target empty. The source is only read.
"""

from __future__ import annotations

import sqlalchemy as sa

from prefpipe.annotate.errors import AnnotateError
from prefpipe.annotate.store import tables
from prefpipe.annotate.store.schema import StoreBase

CHUNK_ROWS = 5_000
"""Rows read and written at a time, so a store of millions of answers copies in bounded memory."""


class StoreNotEmpty(AnnotateError):
    """The target of a copy already holds data: copying would mix two stores."""


def copy_store(source: StoreBase, target: StoreBase) -> dict[str, int]:
    """Copy every row of `source` into the empty `target`; returns the rows copied per table."""
    if source.display == target.display:
        raise AnnotateError(f"--to: {target.display} is the store being copied")
    with target.engine.connect() as conn:
        held = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in tables.COPY_ORDER if t is not tables.meta}
    if any(held.values()):
        what = ", ".join(f"{n} {name}" for name, n in held.items() if n)
        raise StoreNotEmpty(f"--to: {target.display} already holds data ({what}); copy into a new, empty database")
    copied: dict[str, int] = {}
    with source.engine.connect() as src, target.engine.begin() as dst:
        dst.execute(tables.meta.delete())  # the target's own new secret: the source's is the one in use
        for table in tables.COPY_ORDER:
            copied[table.name] = _copy_table(src, dst, table)
        for table in tables.COPY_ORDER:
            n = dst.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if n != copied[table.name]:
                raise AnnotateError(f"{table.name}: {n} rows in the target after copying {copied[table.name]}; nothing was kept")
        if dst.dialect.name == "postgresql":
            _continue_ids_after_copied(dst)
    return copied


def _copy_table(src: sa.Connection, dst: sa.Connection, table: sa.Table) -> int:
    rows = 0
    result = src.execution_options(yield_per=CHUNK_ROWS).execute(sa.select(table).order_by(*table.primary_key.columns))
    for chunk in result.mappings().partitions():
        batch = [dict(row) for row in chunk]
        if table is tables.meta:  # older SQLite files kept the version as text in the BLOB column
            batch = [{**row, "value": row["value"].encode() if isinstance(row["value"], str) else row["value"]} for row in batch]
        dst.execute(table.insert(), batch)
        rows += len(chunk)
    return rows


def _continue_ids_after_copied(conn: sa.Connection) -> None:
    """The copied rows kept their ids; PostgreSQL's id sequences must carry on after them."""
    for table in tables.COPY_ORDER:
        if "id" in table.c:
            conn.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), COALESCE(max(id), 1), max(id) IS NOT NULL) "
                f"FROM {table.name}"))
