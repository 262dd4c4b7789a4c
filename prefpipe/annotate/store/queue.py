"""Loading a batch's tasks and gold pairs into the queue, and how far a batch's queue has come.

Built for batches of a million pairs: the texts are rendered in bulk (render.safe_html_array), new
items are written with executemany in chunks inside the one write transaction, and a rerun tells a
stored item's texts from the incoming ones by its content key and the order of its two responses,
so the stored texts are not read back and only what changed is rendered or written. What is left
is SQLite's own work: inserting and then checkpointing each item's texts and HTML (about 2 KB).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import FieldError
from prefpipe.annotate.render import safe_html, safe_html_array
from prefpipe.annotate.store.schema import StoreBase
from prefpipe.annotate.store.validation import _check_rubric, _prepare_gold, _prepare_tasks

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

GOLD_SCOPES = ("batch", "global")
_TEXTS = ("prompt", "response_a", "response_b")
INSERT_CHUNK_ROWS = 20_000
"""New items written per executemany: bounds the Python copies of their texts and HTML."""
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
        (render.py). Everything is validated before anything is written.
        """
        import pandas as pd

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
        frames = [_prepare_tasks(_python_text(tasks), int(per_item), int(expert_per_item))]
        if gold is not None:
            frames.append(_prepare_gold(_python_text(gold)))
        incoming = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)  # empty ones carry no dtype
        texts = _arrow_texts([tasks] if gold is None else [tasks, gold])  # row for row incoming's: validation keeps every row, in order
        keys = incoming.drop(columns=list(_TEXTS)).assign(a_first=_a_first(texts["response_a"], texts["response_b"]))
        with self._read() as conn:
            planned = _Plan(keys, _existing(conn, batch_id), gold_scope)
        html = _Html(texts, planned)
        now = self._clock()
        with self._write() as conn:
            conn.execute(  # on PostgreSQL this locks the batch's row: a second enqueue of it waits for this one
                sa.text("""INSERT INTO batches (batch_id, guideline_version, rubric, dimension_scale, updated_at)
                   VALUES (:batch, :version, :rubric, :scale, :now)
                   ON CONFLICT (batch_id) DO UPDATE SET guideline_version = excluded.guideline_version,
                     rubric = excluded.rubric, dimension_scale = excluded.dimension_scale,
                     updated_at = excluded.updated_at"""),
                {"batch": batch_id, "version": guideline_version, "rubric": rubric_json, "scale": json.dumps([lo, hi]), "now": now},
            )
            plan = _Plan(keys, _existing(conn, batch_id), gold_scope)
            _insert_new(conn, batch_id, plan, incoming, html, guideline_version=guideline_version, gold_scope=gold_scope, now=now)
            _update_touched(conn, plan, incoming, html, guideline_version=guideline_version, gold_scope=gold_scope)
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


def _python_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its Arrow-backed text columns as Python objects: validation looks at every
    value in Python, which is many times faster over numpy's object arrays than over Arrow's."""
    import pandas as pd

    arrow = [c for c in (*_TEXTS, "pair_id", "route", "label") if c in frame.columns
             and isinstance(frame[c].dtype, (pd.StringDtype, pd.ArrowDtype)) and getattr(frame[c].dtype, "storage", "pyarrow") != "python"]
    return frame.astype({c: object for c in arrow}) if arrow else frame


def _arrow_texts(frames: list[pd.DataFrame]) -> dict[str, pa.ChunkedArray]:
    """The validated frames' texts, one after the other, in Arrow: taken as they are (no copy) when
    they are Arrow-backed, converted once when Python objects; large_string, so no size limit."""
    import pyarrow as pa

    def chunks(values: pd.Series) -> list[pa.Array]:
        if not len(values):  # an empty frame's columns may be of any dtype
            return []
        array = pa.array(values, pa.large_string())
        return array.chunks if isinstance(array, pa.ChunkedArray) else [array]

    return {col: pa.chunked_array([c for f in frames for c in chunks(f[col])], pa.large_string()) for col in _TEXTS}


def _a_first(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    """1 where response_a sorts before response_b, by code point (as the stored texts are compared)."""
    import pyarrow.compute as pc

    return pc.less(a, b).to_numpy(zero_copy_only=False).astype("int64")


def _existing(conn: sa.Connection, batch_id: str) -> pd.DataFrame:
    """The batch's stored items, to merge what is being loaded with. Not their texts: their content
    key (a 128-bit hash of the prompt and both responses, in either order) and whether response_a
    sorts first equal the incoming pair's when, and but for a hash collision only when, the texts are
    the same. Texts are read only where HTML is missing."""
    import pandas as pd

    code_points = ' COLLATE "C"' if conn.dialect.name == "postgresql" else ""  # SQLite's BINARY already is
    rows = conn.execute(sa.text(
        f"""SELECT id, pair_id, queue, route, priority, labels_wanted, gold_label, gold_scope, content_key,
                  CASE WHEN response_a{code_points} < response_b{code_points} THEN 1 ELSE 0 END,
                  prompt_html IS NULL,
                  CASE WHEN prompt_html IS NULL THEN prompt END, CASE WHEN prompt_html IS NULL THEN response_a END,
                  CASE WHEN prompt_html IS NULL THEN response_b END,
                  EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = items.id) AS served
           FROM items WHERE batch_id = :batch"""), {"batch": batch_id}).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=[
        "id", "pair_id", "queue", "route", "priority", "labels_wanted", "gold_label", "scope_old", "content_key", "a_first",
        "needs_html", "prompt_old", "response_a_old", "response_b_old", "served"])


def _placeholder(conn: sa.Connection) -> str:
    """The driver's positional parameter: ? for SQLite, %s for psycopg."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _none(value: object) -> object:
    """None for a missing value pandas holds as NaN (the database wants NULL, not a float)."""
    return None if value is None or value != value else value


class _Plan:
    """What loading the incoming rows over the stored items does: insert the new ones; update those
    whose route, priority, labels wanted, gold key or (while unserved) text changed; fill in the
    HTML of items stored without it; leave the rest alone. It is made from the incoming rows but
    their texts (`keys`, with a_first), and `merged` is row for row the incoming frame."""

    def __init__(self, keys: pd.DataFrame, existing: pd.DataFrame, gold_scope: str) -> None:
        merged = keys.merge(existing, on=["pair_id", "queue"], how="left", suffixes=("", "_old"), indicator=True)
        self.merged = merged
        self.new = merged["_merge"].eq("left_only").to_numpy()
        old = merged[~self.new]
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

        old = self.old.index[(self.text_changed | self.needs_html).to_numpy()].to_numpy()
        return np.union1d(np.flatnonzero(self.new), old)

    def kept_texts_without_html(self) -> set[str]:
        """Stored texts that may be kept (their pair changed) and have no HTML yet."""
        rows = self.old[(self.text_changed & self.needs_html).to_numpy()]
        return {t for col in _TEXTS for t in rows[f"{col}_old"]}

    def counts(self) -> dict[str, int]:
        import numpy as np

        is_gold = self.merged["queue"].eq(asg.GOLD_QUEUE).to_numpy()
        changed = np.zeros(len(self.merged), dtype=bool)
        changed[self.old.index[self.changed.to_numpy()].to_numpy()] = True
        return {
            "inserted": int((~is_gold & self.new).sum()),
            "updated": int((~is_gold & changed).sum()),
            "unchanged": int(len(self.old) - self.changed.sum()),
            "text_kept": int(self.keep_text.sum()),
            "gold_inserted": int((is_gold & self.new).sum()),
            "gold_updated": int((is_gold & changed).sum()),
        }


class _Html:
    """HTML rendered before the write transaction, so the store is never locked while markdown
    renders: of the incoming texts the plan may store (row for row), and of the stored texts it may
    keep without HTML. What a change by another process meanwhile makes needed is rendered when asked."""

    def __init__(self, texts: dict[str, pa.ChunkedArray], plan: _Plan) -> None:
        import numpy as np
        import pyarrow as pa

        self.texts = texts
        self.rows = plan.needs_incoming_html()
        everything = len(self.rows) == len(plan.merged)  # a new batch: no copy of its texts to render them
        self.slot = np.full(len(plan.merged), -1, dtype=np.int64)
        self.slot[self.rows] = np.arange(len(self.rows))
        self.rendered = {col: safe_html_array(texts[col] if everything else texts[col].take(pa.array(self.rows, pa.int64())))
                         for col in _TEXTS}
        self.kept = {t: safe_html(t) for t in plan.kept_texts_without_html()}

    def incoming(self, rows: np.ndarray) -> dict[str, pa.Array | pa.ChunkedArray]:
        """The HTML of each text of these incoming rows."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if np.array_equal(rows, self.rows):
            return dict(self.rendered)
        slots = self.slot[rows]
        missing = slots < 0
        out = {}
        for col, html in self.rendered.items():
            found = html.take(pa.array(slots.clip(0), pa.int64())) if len(html) else pa.nulls(len(rows), pa.large_string())
            if missing.any():
                late = safe_html_array(self.texts[col].take(pa.array(rows[missing], pa.int64()))).combine_chunks()
                found = pc.replace_with_mask(found, pa.array(missing), late)
            out[col] = found
        return out

    def kept_text(self, text: str) -> str:
        return self.kept[text] if text in self.kept else safe_html(text)


def _shuffle_keys(n: int) -> np.ndarray:
    """n random 63-bit shuffle keys at once, as migrations.new_shuffle_key draws one (from os.urandom)."""
    import numpy as np

    return np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64) >> np.uint64(1)


def _insert_new(conn: sa.Connection, batch_id: str, plan: _Plan, incoming: pd.DataFrame, html: _Html, *, guideline_version: str,
                gold_scope: str, now: float) -> None:
    """INSERT the plan's new items, in incoming order (their ids follow it), INSERT_CHUNK_ROWS at a time."""
    import numpy as np

    rows = np.flatnonzero(plan.new)
    if not len(rows):
        return
    everything = len(rows) == len(incoming)
    new = plan.merged if everything else plan.merged.iloc[rows]
    texts = incoming if everything else incoming.iloc[rows]
    rendered = html.incoming(rows)
    is_gold = new["queue"].eq(asg.GOLD_QUEUE).to_numpy()
    gold_label = new["gold_label"].astype(object)
    columns: dict[str, Any] = {
        "batch_id": batch_id, **{col: new[col] for col in ("pair_id", "queue", "route", "content_key")}, **{col: texts[col] for col in _TEXTS},
        **{f"{col}_html": rendered[col] for col in _TEXTS},
        "priority": new["priority"].astype(float), "shuffle_key": _shuffle_keys(len(new)), "labels_wanted": new["labels_wanted"].astype(int),
        "gold_label": gold_label.where(gold_label.notna(), None), "gold_scope": np.where(is_gold, gold_scope, None),
        "gold_version": np.where(is_gold, guideline_version, None), "enqueued_at": now,
    }
    sql = f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}) VALUES ({', '.join([_placeholder(conn)] * len(_ITEM_COLUMNS))})"
    with _bulk_cache(conn, len(new)):
        for start in range(0, len(new), INSERT_CHUNK_ROWS):
            stop = min(start + INSERT_CHUNK_ROWS, len(new))
            conn.exec_driver_sql(sql, list(zip(*(_values(columns[name], start, stop) for name in _ITEM_COLUMNS))))


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


def _update_touched(conn: sa.Connection, plan: _Plan, incoming: pd.DataFrame, html: _Html, *, guideline_version: str,
                    gold_scope: str) -> None:
    """UPDATE the stored items the plan changes or fills in HTML for; a kept text stays as stored."""
    import numpy as np

    touched = plan.touched
    if touched.empty:
        return
    new_texts = incoming.loc[touched.index, list(_TEXTS)]
    take = plan.take_text[touched.index].to_numpy()
    needs_html = plan.needs_html[touched.index].to_numpy()
    same_text = ~plan.text_changed[touched.index].to_numpy()
    as_incoming = take | (needs_html & same_text)  # stored with the HTML of the incoming texts
    rendered = html.incoming(touched.index.to_numpy()[as_incoming])
    slot = np.cumsum(as_incoming) - 1
    incoming_html = {col: rendered[col].to_pylist() for col in _TEXTS}
    updates = []
    for i, (r, (prompt, a, b)) in enumerate(zip(touched.itertuples(index=False), new_texts.itertuples(index=False))):
        texts = {"prompt": prompt, "a": a, "b": b, "key": r.content_key} if take[i] else dict.fromkeys(("prompt", "a", "b", "key"))
        if as_incoming[i]:
            shown = {col: incoming_html[col][slot[i]] for col in _TEXTS}
        else:  # a kept text: its HTML stays, or is made from the stored text
            shown = {col: html.kept_text(getattr(r, f"{col}_old")) if needs_html[i] else None for col in _TEXTS}
        updates.append(dict(route=r.route, priority=float(r.priority), wanted=int(r.labels_wanted), gold=_none(r.gold_label),
                            version=guideline_version, scope=gold_scope, **texts, prompt_html=shown["prompt"],
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
