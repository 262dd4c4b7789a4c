"""Reading answers back: a batch's annotations as the HUMAN_ANNOTATIONS frame, or as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.store.schema import StoreBase
from prefpipe.annotate.store.values import iso_utc

if TYPE_CHECKING:
    import pandas as pd


class ReadbackMixin(StoreBase):
    """Every answer and skip of a batch, joined with its item and annotator."""

    def annotations(self, batch_id: str) -> pd.DataFrame:
        """Every answer and skip of a batch, as the HUMAN_ANNOTATIONS table (without batch_id).

        Gold answers are included with is_gold True. `flagged` is the annotator's flag state now:
        a flagged annotator's labels are kept and marked, and reliability and final labels leave
        them out. Skips have a null label.
        """
        import pandas as pd

        from prefpipe.core.schemas import HUMAN_ANNOTATIONS, conform

        rows = self._answer_rows(batch_id)
        frame = pd.DataFrame(rows, columns=_ANSWER_COLUMNS)
        frame["source"] = "app"
        frame["duration_s"] = frame["answered_at"].astype(float) - frame["served_at"].astype(float)
        frame["created_at"] = [iso_utc(t) for t in frame["answered_at"]]
        frame["is_gold"] = frame["queue"].eq(asg.GOLD_QUEUE)
        frame["flagged"] = frame["flagged"].astype(bool)
        frame["dimensions"] = frame["dimensions"].fillna("{}")
        return conform(frame, HUMAN_ANNOTATIONS, name="human_annotations")

    def export_jsonl(self, batch_id: str, out: str | Path) -> int:
        """Write every stored annotation of a batch, one JSON object a line; returns the count."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = self._answer_rows(batch_id)
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                rec = dict(zip(_ANSWER_COLUMNS, row))
                record = {
                    "batch_id": batch_id,
                    "pair_id": rec["pair_id"],
                    "annotator_id": rec["annotator_id"],
                    "role": rec["role"],
                    "status": rec["status"],
                    "label": rec["label"],
                    "label_shown": rec["label_shown"],
                    "shown_order": "BA" if rec["swapped"] else "AB",
                    "dimensions": json.loads(rec["dimensions"] or "{}"),
                    "skip_reason": rec["skip_reason"],
                    "served_at": iso_utc(rec["served_at"]),
                    "answered_at": iso_utc(rec["answered_at"]),
                    "duration_s": rec["answered_at"] - rec["served_at"],
                    "is_gold": rec["queue"] == asg.GOLD_QUEUE,
                    "gold_label": rec["gold_label"],
                    "gold_pending": bool(rec["gold_pending"]),
                    "gold_correct": None if rec["gold_correct"] is None else bool(rec["gold_correct"]),
                    "flagged": bool(rec["flagged"]),
                    "route": rec["route"],
                    "guideline_version": rec["guideline_version"],
                    "source": "app",
                }
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        tmp.replace(out)
        return len(rows)

    def _answer_rows(self, batch_id: str) -> list[tuple]:
        sql = f"""
        SELECT {", ".join(_ANSWER_SELECT)}
        FROM assignments a JOIN items i ON i.id = a.item_id JOIN annotators an ON an.id = a.annotator_id
        WHERE a.batch_id = :batch AND a.status IN ('answered', 'skipped')
        ORDER BY a.answered_at, a.id
        """
        with self._read() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), {"batch": batch_id})]


_ANSWER_FIELDS = {
    "pair_id": "i.pair_id",
    "annotator_id": "an.name",
    "label": "a.label",
    "label_shown": "a.label_shown",
    "role": "a.role",
    "status": "a.status",
    "dimensions": "a.dimensions",
    "served_at": "a.served_at",
    "answered_at": "a.answered_at",
    "queue": "i.queue",
    "route": "i.route",
    "gold_label": "CASE WHEN i.gold_version = a.guideline_version THEN i.gold_label END",
    "gold_pending": "i.queue = 'gold' AND a.status = 'answered' AND a.gold_correct IS NULL",
    "gold_correct": "a.gold_correct",
    "flagged": "an.flagged",
    "guideline_version": "a.guideline_version",
    "swapped": "a.swapped",
    "skip_reason": "a.skip_reason",
}
_ANSWER_COLUMNS = list(_ANSWER_FIELDS)
_ANSWER_SELECT = list(_ANSWER_FIELDS.values())
