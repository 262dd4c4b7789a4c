"""Gold answer keys and their guideline versions: the list of gold pairs, and an expert's re-check.

(The gold policy itself, when gold is served, what counts as correct and when someone is flagged,
is `prefpipe.annotate.gold`; this module is the store's side of the keys.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from prefpipe.annotate.errors import AnnotatorError, FieldError
from prefpipe.annotate.gold import is_correct
from prefpipe.annotate.store.schema import StoreBase
from prefpipe.annotate.store.values import iso_utc
from prefpipe.core.labels import CODE, SCALE

if TYPE_CHECKING:
    import pandas as pd


class GoldKeysMixin(StoreBase):
    """Gold items' keys, their versions and who last re-checked them."""

    def gold_items(self, current_version: str | None = None) -> pd.DataFrame:
        """Every gold pair with its key, the version the key was written or confirmed under, who
        last re-checked it, how many answers it has and how many of them await a re-check, and its
        scope (served beside its own batch only, or any); `stale` is True where the key's version
        is not `current_version` (None: nothing is stale)."""
        import pandas as pd

        with self._read() as conn:
            rows = conn.execute(sa.text(
                """SELECT i.batch_id, i.pair_id, i.gold_label, i.gold_version, i.gold_checked_by, i.gold_checked_at,
                          i.prompt, i.response_a, i.response_b,
                          count(a.id) FILTER (WHERE a.status = 'answered'),
                          count(a.id) FILTER (WHERE a.status = 'answered' AND a.gold_correct IS NULL), i.gold_scope
                   FROM items i LEFT JOIN assignments a ON a.item_id = i.id
                   WHERE i.queue = 'gold' GROUP BY i.id ORDER BY i.batch_id, i.pair_id""")).all()
        frame = pd.DataFrame([tuple(row) for row in rows], columns=["batch_id", "pair_id", "gold_label", "gold_version", "checked_by", "checked_at",
                                            "prompt", "response_a", "response_b", "answers", "answers_awaiting_recheck",
                                            "scope"])
        frame["checked_at"] = [iso_utc(t) for t in frame["checked_at"]]
        frame.insert(4, "stale", frame["gold_version"].ne(current_version) if current_version is not None else False)
        return frame

    def recheck_gold(self, pair_id: str, *, version: str, expert: str, label: str | None = None,
                     batch_id: str | None = None) -> dict[str, Any]:
        """An expert confirms (label None) or corrects a gold key under guideline `version`.

        The key is re-stamped with `version` and the answers given under that version that were
        stored unscored are scored against it (they count in gold accuracy from now on; the live
        flag rule only counts answers scored as they came in, so a re-check never pauses anyone
        retroactively). The decision applies to every batch that loaded the pair with the same text
        (a team that copies one gold file into each batch folder re-checks each pair once);
        `batch_id` limits it to one batch and is needed when batches loaded different text under
        the same pair id. Returns what changed."""
        if label is not None and label not in CODE:
            raise FieldError("label", f"{label!r} is not on the scale {', '.join(SCALE)}")
        if not isinstance(version, str) or not version:
            raise FieldError("version", "must be a non-empty string")
        now = self._clock()
        with self._write() as conn:
            who = conn.execute(sa.text("SELECT role, disabled FROM annotators WHERE name = :name"), {"name": expert}).fetchone()
            if who is None or who[1] or who[0] not in ("expert", "admin"):
                raise AnnotatorError(f"expert: {expert!r} is not an active expert or admin account")
            sql = "SELECT id, batch_id, gold_label, content_key FROM items WHERE queue = 'gold' AND pair_id = :pair"
            if batch_id is not None:
                sql += " AND batch_id = :batch"
            found = conn.execute(sa.text(sql + self._for_update), {"pair": pair_id, "batch": batch_id}).all()
            if not found:
                raise FieldError("pair_id", f"{pair_id!r} is not a gold pair" + (f" of batch {batch_id!r}" if batch_id else ""))
            batches = sorted(r[1] for r in found)
            if len({r[3] for r in found}) > 1:
                raise FieldError("batch_id", f"gold pair {pair_id!r} was loaded with different text by batches "
                                             f"{', '.join(batches)}: say which one")
            old_labels = {r[2] for r in found}
            new_label = found[0][2] if label is None and len(old_labels) == 1 else label
            if new_label is None:
                raise FieldError("label", f"gold pair {pair_id!r} has different keys in batches {', '.join(batches)}: "
                                          "give the key that holds instead of confirming")
            ids = [(r[0],) for r in found]
            conn.execute(sa.text(
                "UPDATE items SET gold_label = :label, gold_version = :version, gold_checked_by = :expert, "
                "gold_checked_at = :now WHERE id = :id"),
                [{"label": new_label, "version": version, "expert": expert, "now": now, "id": item_id} for (item_id,) in ids],
            )
            pending = [
                tuple(row) for (item_id,) in ids for row in conn.execute(sa.text(
                    """SELECT id, label FROM assignments WHERE item_id = :item AND status = 'answered'
                       AND gold_correct IS NULL AND guideline_version = :version"""),
                    {"item": item_id, "version": version},
                )
            ]
            if pending:
                conn.execute(sa.text("UPDATE assignments SET gold_correct = :correct WHERE id = :id"),
                             [{"correct": int(is_correct(answer, new_label, self.gold_policy)), "id": aid} for aid, answer in pending])
        return {"batches": batches, "pair_id": pair_id, "old_label": ", ".join(sorted(old_labels)), "label": new_label,
                "version": version, "changed": old_labels != {new_label}, "answers_scored": len(pending)}
