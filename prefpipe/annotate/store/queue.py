"""Loading a batch's tasks and gold pairs into the queue, and how far a batch's queue has come."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import FieldError
from prefpipe.annotate.render import safe_html
from prefpipe.annotate.store import tables
from prefpipe.annotate.store.schema import StoreBase, new_shuffle_key
from prefpipe.annotate.store.validation import _check_rubric, _prepare_gold, _prepare_tasks

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

GOLD_SCOPES = ("batch", "global")
_TEXTS = ("prompt", "response_a", "response_b")


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
        frames = [_prepare_tasks(tasks, int(per_item), int(expert_per_item))]
        if gold is not None:
            frames.append(_prepare_gold(gold))
        incoming = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)  # empty ones carry no dtype
        with self._read() as conn:
            existing = _existing(conn, batch_id)
        html = _render_outside_the_lock(incoming, existing)
        now = self._clock()
        counts = {"inserted": 0, "updated": 0, "unchanged": 0, "text_kept": 0, "gold_inserted": 0, "gold_updated": 0}
        with self._write() as conn:
            conn.execute(  # on PostgreSQL this locks the batch's row: a second enqueue of it waits for this one
                sa.text("""INSERT INTO batches (batch_id, guideline_version, rubric, dimension_scale, updated_at)
                   VALUES (:batch, :version, :rubric, :scale, :now)
                   ON CONFLICT (batch_id) DO UPDATE SET guideline_version = excluded.guideline_version,
                     rubric = excluded.rubric, dimension_scale = excluded.dimension_scale,
                     updated_at = excluded.updated_at"""),
                {"batch": batch_id, "version": guideline_version, "rubric": rubric_json, "scale": json.dumps([lo, hi]), "now": now},
            )
            merged = _merge(incoming, _existing(conn, batch_id))
            is_gold = merged["queue"].eq(asg.GOLD_QUEUE)
            new = merged[merged["_merge"].eq("left_only")]
            rows = [
                dict(batch_id=batch_id, pair_id=r.pair_id, queue=r.queue, route=r.route, prompt=r.prompt,
                     response_a=r.response_a, response_b=r.response_b, content_key=r.content_key,
                     prompt_html=html(r.prompt), response_a_html=html(r.response_a), response_b_html=html(r.response_b),
                     priority=float(r.priority), shuffle_key=new_shuffle_key(), labels_wanted=int(r.labels_wanted),
                     gold_label=_none(r.gold_label), gold_scope=gold_scope if r.queue == asg.GOLD_QUEUE else None,
                     gold_version=guideline_version if r.queue == asg.GOLD_QUEUE else None, enqueued_at=now)
                for r in new.itertuples(index=False)
            ]
            if rows:
                conn.execute(tables.items.insert(), rows)
            old = merged[merged["_merge"].eq("both")]
            text_changed = _text_changed(old)
            keep_text = text_changed & old["served"].astype(bool)
            take_text = text_changed & ~keep_text
            meta_changed = (
                old["route"].ne(old["route_old"])
                | old["priority"].astype(float).ne(old["priority_old"].astype(float))
                | old["labels_wanted"].astype(int).ne(old["labels_wanted_old"].astype(int))
                | old["gold_label"].fillna("").ne(old["gold_label_old"].fillna(""))
                | (old["queue"].eq(asg.GOLD_QUEUE) & old["scope_old"].ne(gold_scope))
            )
            changed = old[meta_changed | take_text]
            touched = old[meta_changed | take_text | old["needs_html"].astype(bool)]
            updates = []
            for r, new_text in zip(touched.itertuples(index=False), take_text[touched.index]):
                prompt, a, b, key = ((r.prompt, r.response_a, r.response_b, r.content_key) if new_text
                                     else (r.prompt_old, r.response_a_old, r.response_b_old, None))
                rendered = new_text or r.needs_html
                updates.append(dict(route=r.route, priority=float(r.priority), wanted=int(r.labels_wanted), gold=_none(r.gold_label),
                                    version=guideline_version, scope=gold_scope, prompt=prompt, a=a, b=b, key=key,
                                    prompt_html=html(prompt) if rendered else None, a_html=html(a) if rendered else None,
                                    b_html=html(b) if rendered else None, id=int(r.id)))
            if updates:
                conn.execute(sa.text("""UPDATE items SET route = :route, priority = :priority, labels_wanted = :wanted,
                     gold_version = CASE WHEN queue = 'gold' AND gold_label IS DISTINCT FROM :gold THEN :version ELSE gold_version END,
                     gold_checked_by = CASE WHEN queue = 'gold' AND gold_label IS DISTINCT FROM :gold THEN NULL ELSE gold_checked_by END,
                     gold_checked_at = CASE WHEN queue = 'gold' AND gold_label IS DISTINCT FROM :gold THEN NULL ELSE gold_checked_at END,
                     gold_label = :gold, gold_scope = CASE WHEN queue = 'gold' THEN :scope END,
                     prompt = :prompt, response_a = :a, response_b = :b, content_key = COALESCE(:key, content_key),
                     prompt_html = COALESCE(:prompt_html, prompt_html), response_a_html = COALESCE(:a_html, response_a_html),
                     response_b_html = COALESCE(:b_html, response_b_html)
                   WHERE id = :id"""), updates)
        changed_mask = merged.index.isin(changed.index)
        counts["inserted"] = int((~is_gold & merged["_merge"].eq("left_only")).sum())
        counts["gold_inserted"] = int((is_gold & merged["_merge"].eq("left_only")).sum())
        counts["updated"] = int((~is_gold & changed_mask).sum())
        counts["gold_updated"] = int((is_gold & changed_mask).sum())
        counts["unchanged"] = int(len(old) - len(changed))
        counts["text_kept"] = int(keep_text.sum())
        return counts

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


def _existing(conn: sa.Connection, batch_id: str) -> pd.DataFrame:
    """The batch's stored items, to merge what is being loaded with."""
    import pandas as pd

    rows = conn.execute(sa.text(
        """SELECT id, pair_id, queue, route, prompt, response_a, response_b, priority, labels_wanted,
                  gold_label, gold_scope, prompt_html IS NULL,
                  EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = items.id) AS served
           FROM items WHERE batch_id = :batch"""), {"batch": batch_id}).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=["id", "pair_id", "queue", "route", "prompt", "response_a", "response_b", "priority",
                                       "labels_wanted", "gold_label", "scope_old", "needs_html", "served"])


def _none(value: object) -> object:
    """None for a missing value pandas holds as NaN (the database wants NULL, not a float)."""
    return None if value is None or value != value else value


def _merge(incoming: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    return incoming.merge(existing, on=["pair_id", "queue"], how="left", suffixes=("", "_old"), indicator=True)


def _text_changed(old: pd.DataFrame) -> pd.Series:
    """Rows (present before) whose prompt or responses differ from the stored ones."""
    import pandas as pd

    changed = pd.Series(False, index=old.index)
    for col in _TEXTS:
        changed |= old[col].ne(old[f"{col}_old"])
    return changed


def _render_outside_the_lock(incoming: pd.DataFrame, existing: pd.DataFrame) -> Callable[[str], str]:
    """HTML for every text that may need it (new pairs, changed text, rows stored without HTML),
    rendered before the write transaction so the store is never locked while markdown renders;
    returns a lookup that renders what it missed (a row changed meanwhile by another process)."""
    merged = _merge(incoming, existing)
    fresh = merged["_merge"].eq("left_only")
    old = merged[~fresh]
    unrendered = old[old["needs_html"].astype(bool)]
    texts = {t for frame in (merged[fresh], old[_text_changed(old)], unrendered) for col in _TEXTS for t in frame[col]}
    texts |= {t for col in _TEXTS for t in unrendered[f"{col}_old"]}
    done = {t: safe_html(t) for t in texts}
    return lambda text: done[text] if text in done else safe_html(text)
