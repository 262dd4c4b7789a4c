"""Loading a batch's tasks and gold pairs into the queue, and how far a batch's queue has come.

Built for batches of a million pairs. The texts stay in Arrow from the frame to the insert
(validation.py checks them in bulk). A text that is only plain paragraphs is stored with
render.PARAGRAPHS_MARK instead of its HTML, which halves what the database writes and checkpoints.
New items are written a chunk at a time inside the one write transaction (executemany on SQLite,
COPY on PostgreSQL), their texts made Python values and hashed into content keys a chunk at a time.
A rerun tells a stored item's texts from the incoming ones by its content key and the order of its
two responses, so the stored texts are not read back and only what changed is rendered or written.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import repeat
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import FieldError
from prefpipe.annotate.render import plain_paragraphs, stored_html, stored_html_array
from prefpipe.annotate.store.admin import batch_progress
from prefpipe.annotate.store.schema import StoreBase
from prefpipe.annotate.store.validation import TEXTS, _check_rubric, _prepare_gold, _prepare_tasks
from prefpipe.annotate.store.values import content_keys

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

GOLD_SCOPES = ("batch", "global")
INSERT_CHUNK_ROWS = 20_000
"""New items written at a time: bounds the Python copies of their texts."""
BULK_CACHE_KIB = 64 * 1024
"""SQLite's page cache while a big batch is inserted (the default is 2 MiB): its indexes' pages stay
in memory instead of being spilled to the WAL and read back, a fifth less time; then back as it was."""
_ITEM_COLUMNS = ("batch_id", "pair_id", "queue", "route", "prompt", "response_a", "response_b", "content_key",
                 "prompt_html", "response_a_html", "response_b_html", "priority", "shuffle_key", "labels_wanted",
                 "gold_label", "gold_scope", "gold_version", "enqueued_at")


class QueueMixin(StoreBase):
    """The `batches` and `items` tables: what is to be labelled, and how often."""

    def enqueue(
        self,
        batch_id: str,
        tasks: pd.DataFrame,
        *,
        per_item: int,
        guideline_version: str,
        rubric: list[dict[str, Any]],
        gold: pd.DataFrame | None = None,
        expert_per_item: int = 1,
        dimension_scale: tuple[int, int] = (1, 5),
        gold_scope: str = "batch",
    ) -> dict[str, int]:
        """Load a batch's tasks (and gold pairs) into the queue; idempotent.

        `tasks` has pair_id, prompt, response_a, response_b, route (human | spot_check | expert) and
        priority (higher first), and may have labels_wanted (per row; else per_item, or
        expert_per_item for the expert route). `gold` has pair_id, prompt, response_a, response_b
        and label (in the pair's order). Re-enqueueing the same batch updates route, priority,
        labels wanted, gold label and the batch's guideline version and rubric (a changed gold label
        is a new key under this version; an unchanged one keeps its version, since reloading a gold
        file is not an expert re-check); it never
        duplicates an item and never touches an answer. A pair whose text changed is updated only
        while nobody has been served it (else its old text is kept and counted in `text_kept`).
        `gold_scope` "batch" serves the gold only beside this batch's tasks, "global" beside any
        batch's. Each new or changed text is rendered to HTML here, once, outside the write lock
        (render.stored_html_array). Everything is validated before anything is written.
        """
        import pandas as pd
        import pyarrow as pa

        if not isinstance(batch_id, str) or not batch_id.strip():
            raise FieldError("batch_id", "must be a non-empty string")
        if int(per_item) < 1:
            raise FieldError("per_item", f"{per_item!r} must be at least 1")
        if int(expert_per_item) < 1:
            raise FieldError("expert_per_item", f"{expert_per_item!r} must be at least 1")
        if not isinstance(guideline_version, str) or not guideline_version:
            raise FieldError("guideline_version", "must be a non-empty string")
        if gold_scope not in GOLD_SCOPES:
            raise FieldError("gold_scope", f"{gold_scope!r} must be one of {', '.join(GOLD_SCOPES)}")
        rubric_json = json.dumps(_check_rubric(rubric), separators=(",", ":"))
        lo, hi = int(dimension_scale[0]), int(dimension_scale[1])
        if lo >= hi:
            raise FieldError("dimension_scale", f"{dimension_scale!r} must be (low, high) with low < high")
        prepared = [_prepare_tasks(tasks, int(per_item), int(expert_per_item))]
        if gold is not None:
            prepared.append(_prepare_gold(gold))
        incoming = pd.concat([rows for rows, _ in prepared if len(rows)] or [prepared[0][0]], ignore_index=True)  # empty ones carry no dtype
        texts = {col: pa.chunked_array([c for _, t in prepared for c in t[col].chunks], pa.large_string()) for col in TEXTS}
        incoming["a_first"] = _a_first(texts["response_a"], texts["response_b"])
        keys = _Keys(texts)
        with self._read() as conn:
            looked = _writes_seen(conn)
            planned = _Plan(incoming, _existing(conn, batch_id), gold_scope, keys)
        html = _Html(texts, planned)
        now = self._clock()
        with self._write() as conn:
            unchanged = looked is not None and _writes_seen(conn) == looked
            conn.execute(  # on PostgreSQL this locks the batch's row: a second enqueue of it waits for this one
                sa.text("""INSERT INTO batches (batch_id, guideline_version, rubric, dimension_scale, updated_at)
                   VALUES (:batch, :version, :rubric, :scale, :now)
                   ON CONFLICT (batch_id) DO UPDATE SET guideline_version = excluded.guideline_version,
                     rubric = excluded.rubric, dimension_scale = excluded.dimension_scale,
                     updated_at = excluded.updated_at"""),
                {"batch": batch_id, "version": guideline_version, "rubric": rubric_json, "scale": json.dumps([lo, hi]), "now": now},
            )
            plan = planned if unchanged else _Plan(incoming, _existing(conn, batch_id), gold_scope, keys)
            _insert_new(conn, batch_id, plan, texts, html, guideline_version=guideline_version, gold_scope=gold_scope, now=now)
            _update_touched(conn, plan, texts, html, guideline_version=guideline_version, gold_scope=gold_scope)
        return plan.counts()

    def batch_status(self, batch_id: str) -> dict[str, int]:
        """How far a batch's queue has come: items, labels wanted and received, tasks in flight."""
        with self._read() as conn:
            args = {"batch": batch_id}
            items, wanted = conn.execute(sa.text(
                "SELECT count(*), COALESCE(sum(labels_wanted), 0) FROM items WHERE batch_id = :batch AND queue != 'gold'"),
                args).one()
            by_status = {status: n for status, n in conn.execute(sa.text(
                "SELECT status, count(*) FROM assignments WHERE batch_id = :batch GROUP BY status"), args)}
            gold = conn.execute(sa.text("SELECT count(*) FROM items WHERE batch_id = :batch AND queue = 'gold'"), args).scalar_one()
        return {
            "items": int(items),
            "gold_items": int(gold),
            "labels_wanted": int(wanted),
            "answered": int(by_status.get("answered", 0)),
            "skipped": int(by_status.get("skipped", 0)),
            "pending": int(by_status.get("pending", 0)),
        }

    def queue_progress(self) -> list[dict[str, Any]]:
        """Every batch's queue progress for the admin page, counted by the database (admin.batch_progress)."""
        with self._read() as conn:
            return batch_progress(conn)


def _a_first(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    """1 where response_a sorts before response_b, by code point (as the stored texts are compared)."""
    import pyarrow.compute as pc

    return pc.less(a, b).to_numpy(zero_copy_only=False).astype("int64")


def _existing(conn: sa.Connection, batch_id: str) -> pd.DataFrame:
    """The batch's stored items, to merge what is being loaded with. Not their texts: their content
    key (a 128-bit hash of the prompt and both responses, in either order) and whether response_a
    sorts first equal the incoming pair's when, and but for a hash collision only when, the texts are
    the same. Texts are read only where HTML is missing. Read through the driver's cursor: plain
    tuples, a rerun of a million pairs reads that many rows."""
    import pandas as pd

    code_points = ' COLLATE "C"' if conn.dialect.name == "postgresql" else ""  # SQLite's BINARY already is
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(
            f"""SELECT id, pair_id, queue, route, priority, labels_wanted, gold_label, gold_scope, content_key,
                      CASE WHEN response_a{code_points} < response_b{code_points} THEN 1 ELSE 0 END,
                      prompt_html IS NULL,
                      CASE WHEN prompt_html IS NULL THEN prompt END, CASE WHEN prompt_html IS NULL THEN response_a END,
                      CASE WHEN prompt_html IS NULL THEN response_b END,
                      EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = items.id) AS served
               FROM items WHERE batch_id = {_placeholder(conn)}""", (batch_id,))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return pd.DataFrame(rows, columns=[
        "id", "pair_id", "queue", "route", "priority", "labels_wanted", "gold_label", "scope_old", "content_key_old", "a_first",
        "needs_html", "prompt_old", "response_a_old", "response_b_old", "served"])


def _writes_seen(conn: sa.Connection) -> tuple[int, int] | None:
    """What changes when anyone writes the SQLite store: its data_version (other connections'
    commits) and this connection's total_changes. Equal at both looks, the items read at the first
    are still the items (a million-pair rerun reads them once); None on PostgreSQL, read twice."""
    if conn.dialect.name != "sqlite":
        return None
    return int(conn.exec_driver_sql("PRAGMA data_version").scalar_one()), conn.connection.driver_connection.total_changes


def _placeholder(conn: sa.Connection) -> str:
    """The driver's positional parameter: ? for SQLite, %s for psycopg."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _none(value: object) -> object:
    """None for a missing value pandas holds as NaN (the database wants NULL, not a float)."""
    return None if value is None or value != value else value


class _Keys:
    """The incoming pairs' content keys, made when first asked for: the plan asks only for those of
    pairs already stored, and a new pair's is made while it is inserted, from the texts it is bound
    with; so a new batch's texts become Python objects once, a chunk at a time."""

    def __init__(self, texts: dict[str, pa.ChunkedArray]) -> None:
        import numpy as np

        self.texts = texts
        self.known = np.full(len(texts["prompt"]), None, dtype=object)

    def of(self, rows: np.ndarray) -> np.ndarray:
        import pandas as pd
        import pyarrow as pa

        todo = rows[pd.isna(self.known[rows])]
        if len(todo):
            index = pa.array(todo, pa.int64())
            self.known[todo] = content_keys(*(self.texts[col].take(index).to_pylist() for col in TEXTS))
        return self.known[rows]


class _Plan:
    """What loading the incoming rows over the stored items does: insert the new ones; update those
    whose route, priority, labels wanted, gold key or (while unserved) text changed; fill in the
    HTML of items stored without it; leave the rest alone. It is made from the incoming rows but
    their texts (with a_first); `old` is the incoming rows already stored, indexed by their position
    among the incoming rows, with the stored values beside them."""

    def __init__(self, incoming: pd.DataFrame, existing: pd.DataFrame, gold_scope: str, keys: _Keys) -> None:
        import numpy as np

        self.incoming = incoming
        self.is_gold = incoming["queue"].to_numpy() == asg.GOLD_QUEUE
        old = _stored(incoming, existing)
        self.new = np.ones(len(incoming), dtype=bool)
        self.new[old.index.to_numpy()] = False
        old = old.assign(content_key=keys.of(old.index.to_numpy()))
        self.old = old
        self.text_changed = old["content_key"].ne(old["content_key_old"]) | old["a_first"].ne(old["a_first_old"].astype("int64"))
        self.needs_html = old["needs_html"].astype(bool)
        self.keep_text = self.text_changed & old["served"].astype(bool)
        self.take_text = self.text_changed & ~self.keep_text
        meta_changed = (
            old["route"].ne(old["route_old"])
            | old["priority"].astype(float).ne(old["priority_old"].astype(float))
            | old["labels_wanted"].astype(int).ne(old["labels_wanted_old"].astype(int))
            | old["gold_label"].fillna("").ne(old["gold_label_old"].fillna(""))
            | (old["queue"].eq(asg.GOLD_QUEUE) & old["scope_old"].ne(gold_scope))
        )
        self.changed = meta_changed | self.take_text
        self.touched = old[self.changed | self.needs_html]

    def needs_incoming_html(self) -> np.ndarray:
        """Rows whose incoming texts may be stored with their HTML: new, changed or stored without HTML."""
        import numpy as np

        rows = self.new.copy()
        rows[self.old.index[(self.text_changed | self.needs_html).to_numpy()].to_numpy()] = True
        return np.flatnonzero(rows)

    def kept_texts_without_html(self) -> set[str]:
        """Stored texts that may be kept (their pair changed) and have no HTML yet."""
        rows = self.old[(self.text_changed & self.needs_html).to_numpy()]
        return {t for col in TEXTS for t in rows[f"{col}_old"]}

    def counts(self) -> dict[str, int]:
        import numpy as np

        is_gold = self.is_gold
        changed = np.zeros(len(self.incoming), dtype=bool)
        changed[self.old.index[self.changed.to_numpy()].to_numpy()] = True
        return {
            "inserted": int((~is_gold & self.new).sum()),
            "updated": int((~is_gold & changed).sum()),
            "unchanged": int(len(self.old) - self.changed.sum()),
            "text_kept": int(self.keep_text.sum()),
            "gold_inserted": int((is_gold & self.new).sum()),
            "gold_updated": int((is_gold & changed).sum()),
        }


def _stored(incoming: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """The incoming rows already stored (matched on pair and queue, in incoming order, indexed by
    incoming position) beside their stored columns, suffixed _old where both have one."""
    left = incoming if len(existing) else incoming.iloc[:0]  # nothing stored yet: no key to hash
    joined = left.rename_axis("row").reset_index().merge(existing, on=["pair_id", "queue"], how="inner", suffixes=("", "_old"))
    return joined.set_index("row")


class _Html:
    """What the store keeps for each text's HTML (render.stored_html_array), made before the write
    transaction, so the store is never locked while markdown renders: of the incoming texts the plan
    may store (row for row), and of the stored texts it may keep without HTML. What a change by
    another process meanwhile makes needed is made when asked."""

    def __init__(self, texts: dict[str, pa.ChunkedArray], plan: _Plan) -> None:
        import numpy as np
        import pyarrow as pa

        self.texts = texts
        self.rows = plan.needs_incoming_html()
        everything = len(self.rows) == len(plan.incoming)  # a new batch: no copy of its texts to render them
        self.slot = np.full(len(plan.incoming), -1, dtype=np.int64)
        self.slot[self.rows] = np.arange(len(self.rows))
        picked = [texts[col] if everything else texts[col].take(pa.array(self.rows, pa.int64())) for col in TEXTS]
        with ThreadPoolExecutor(len(TEXTS)) as pool:  # Arrow matches each column's pattern without the GIL
            plain = list(pool.map(plain_paragraphs, picked))
        self.stored = {col: stored_html_array(t, p) for col, t, p in zip(TEXTS, picked, plain)}
        self.kept = {t: stored_html(t) for t in plan.kept_texts_without_html()}

    def incoming(self, rows: np.ndarray) -> dict[str, pa.Array]:
        """What is stored for the HTML of each text of these incoming rows."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if np.array_equal(rows, self.rows):
            return dict(self.stored)
        slots = self.slot[rows]
        missing = slots < 0
        out = {}
        for col, stored in self.stored.items():
            found = stored.take(pa.array(slots.clip(0), pa.int64())) if len(stored) else pa.nulls(len(rows), pa.large_string())
            if missing.any():
                late = stored_html_array(self.texts[col].take(pa.array(rows[missing], pa.int64())))
                found = pc.replace_with_mask(found, pa.array(missing), late)
            out[col] = found
        return out

    def kept_text(self, text: str) -> str:
        return self.kept[text] if text in self.kept else stored_html(text)


def _shuffle_keys(n: int) -> np.ndarray:
    """n random 63-bit shuffle keys at once, as migrations.new_shuffle_key draws one (from os.urandom)."""
    import numpy as np

    return np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64) >> np.uint64(1)


def _insert_new(conn: sa.Connection, batch_id: str, plan: _Plan, texts: dict[str, pa.ChunkedArray], html: _Html, *,
                guideline_version: str, gold_scope: str, now: float) -> None:
    """INSERT the plan's new items, in incoming order (their ids follow it), INSERT_CHUNK_ROWS at a time."""
    import numpy as np
    import pyarrow as pa

    rows = np.flatnonzero(plan.new)
    if not len(rows):
        return
    everything = len(rows) == len(plan.incoming)
    new = plan.incoming if everything else plan.incoming.iloc[rows]
    is_gold = plan.is_gold[rows]
    gold_label = new["gold_label"].astype(object)
    columns: dict[str, Any] = {
        "batch_id": batch_id, **{col: new[col] for col in ("pair_id", "queue", "route")},
        **{f"{col}_html": stored for col, stored in html.incoming(rows).items()},
        "priority": new["priority"].astype(float), "shuffle_key": _shuffle_keys(len(new)), "labels_wanted": new["labels_wanted"].astype(int),
        "gold_label": gold_label.where(gold_label.notna(), None), "gold_scope": np.where(is_gold, gold_scope, None),
        "gold_version": np.where(is_gold, guideline_version, None), "enqueued_at": now,
    }

    def chunk(start: int, stop: int) -> list[tuple]:
        """Rows start:stop of the new items as the driver binds them, with their content keys."""
        values = {col: (texts[col].slice(start, stop - start) if everything else texts[col].take(pa.array(rows[start:stop])))
                  .to_pylist() for col in TEXTS}
        values["content_key"] = content_keys(*(values[col] for col in TEXTS))
        return list(zip(*(values[name] if name in values else _values(columns[name], start, stop) for name in _ITEM_COLUMNS)))

    chunks = (chunk(start, min(start + INSERT_CHUNK_ROWS, len(rows))) for start in range(0, len(rows), INSERT_CHUNK_ROWS))
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, chunks)
        return
    sql = f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}) VALUES ({', '.join(['?'] * len(_ITEM_COLUMNS))})"
    with _bulk_cache(conn, len(rows)):
        for values in chunks:
            conn.exec_driver_sql(sql, values)


def _copy_rows(conn: sa.Connection, chunks: Iterable[list[tuple]]) -> None:
    """PostgreSQL's bulk load, COPY, through psycopg on the transaction's own connection."""
    with conn.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f"COPY items ({', '.join(_ITEM_COLUMNS)}) FROM STDIN") as copy:
        for values in chunks:
            for row in values:
                copy.write_row(row)


@contextmanager
def _bulk_cache(conn: sa.Connection, rows: int) -> Iterator[None]:
    """SQLite's page cache at BULK_CACHE_KIB while more than one chunk of rows is inserted."""
    if conn.dialect.name != "sqlite" or rows <= INSERT_CHUNK_ROWS:
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    conn.exec_driver_sql(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {before}")


def _values(column: Any, start: int, stop: int) -> Any:
    """Python values of rows start:stop of a column: a Series, a numpy or Arrow array, or one value for all."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(column, pd.Series):
        return column.iloc[start:stop].tolist()
    if isinstance(column, np.ndarray):
        return column[start:stop].tolist()
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return column.slice(start, stop - start).to_pylist()
    return repeat(column, stop - start)


def _update_touched(conn: sa.Connection, plan: _Plan, texts: dict[str, pa.ChunkedArray], html: _Html, *, guideline_version: str,
                    gold_scope: str) -> None:
    """UPDATE the stored items the plan changes or fills in HTML for; a kept text stays as stored."""
    import numpy as np
    import pyarrow as pa

    touched = plan.touched
    if touched.empty:
        return
    index = pa.array(touched.index.to_numpy(), pa.int64())
    new_texts = zip(*(texts[col].take(index).to_pylist() for col in TEXTS))
    take = plan.take_text[touched.index].to_numpy()
    needs_html = plan.needs_html[touched.index].to_numpy()
    same_text = ~plan.text_changed[touched.index].to_numpy()
    as_incoming = take | (needs_html & same_text)  # stored with the HTML of the incoming texts
    stored = html.incoming(touched.index.to_numpy()[as_incoming])
    slot = np.cumsum(as_incoming) - 1
    incoming_html = {col: stored[col].to_pylist() for col in TEXTS}
    updates = []
    for i, (r, (prompt, a, b)) in enumerate(zip(touched.itertuples(index=False), new_texts)):
        given = {"prompt": prompt, "a": a, "b": b, "key": r.content_key} if take[i] else dict.fromkeys(("prompt", "a", "b", "key"))
        if as_incoming[i]:
            shown = {col: incoming_html[col][slot[i]] for col in TEXTS}
        else:  # a kept text: its HTML stays, or is made from the stored text
            shown = {col: html.kept_text(getattr(r, f"{col}_old")) if needs_html[i] else None for col in TEXTS}
        updates.append(dict(route=r.route, priority=float(r.priority), wanted=int(r.labels_wanted), gold=_none(r.gold_label),
                            version=guideline_version, scope=gold_scope, **given, prompt_html=shown["prompt"],
                            a_html=shown["response_a"], b_html=shown["response_b"], id=int(r.id)))
    conn.execute(sa.text("""UPDATE items SET route = :route, priority = :priority, labels_wanted = :wanted,
         gold_version = CASE WHEN queue = 'gold' AND gold_label IS DISTINCT FROM :gold THEN :version ELSE gold_version END,
         gold_checked_by = CASE WHEN queue = 'gold' AND gold_label IS DISTINCT FROM :gold THEN NULL ELSE gold_checked_by END,
         gold_checked_at = CASE WHEN queue = 'gold' AND gold_label IS DISTINCT FROM :gold THEN NULL ELSE gold_checked_at END,
         gold_label = :gold, gold_scope = CASE WHEN queue = 'gold' THEN :scope END,
         prompt = COALESCE(:prompt, prompt), response_a = COALESCE(:a, response_a), response_b = COALESCE(:b, response_b),
         content_key = COALESCE(:key, content_key),
         prompt_html = COALESCE(:prompt_html, prompt_html), response_a_html = COALESCE(:a_html, response_a_html),
         response_b_html = COALESCE(:b_html, response_b_html)
       WHERE id = :id"""), updates)
