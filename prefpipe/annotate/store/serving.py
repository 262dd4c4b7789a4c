"""Serving tasks and taking answers: the next task (with gold mixed in), answer, skip, progress,
and releasing leases of tasks nobody answered."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import (
    AlreadyAnswered,
    AnnotatorError,
    AnnotatorPaused,
    FieldError,
    TaskNotFound,
)
from prefpipe.annotate.gold import flag_reason, is_correct, is_gold_turn
from prefpipe.annotate.render import shown_html
from prefpipe.annotate.store.annotators import FLAG_SHOWN, LABELLING_ROLES, Annotator
from prefpipe.annotate.store.schema import StoreBase
from prefpipe.annotate.tokens import new_task_id
from prefpipe.core.labels import CODE, SCALE

SWEEP_EVERY_S = 60.0


@dataclass(frozen=True)
class Task:
    """One task as the annotator sees it: A and B already in their order."""

    task_id: str
    prompt: str
    response_a: str
    response_b: str
    rubric: list[dict[str, Any]]
    guideline_version: str
    rendered: dict[str, str] = field(default_factory=dict, compare=False)
    """Safe HTML of prompt, response_a and response_b (in this order of A and B), from what was stored
    when queued (render.shown_html)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "prompt": self.prompt,
            "response_a": self.response_a,
            "response_b": self.response_b,
            "rubric": self.rubric,
            "guideline_version": self.guideline_version,
        }


@dataclass(frozen=True)
class Receipt:
    task_id: str
    status: str  # answered | skipped
    answered: int  # the annotator's totals after this action
    skipped: int

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "status": self.status, "answered": self.answered, "skipped": self.skipped}


class ServingMixin(StoreBase):
    """The `assignments` table as annotators work through it."""

    def next_task(self, annotator: Annotator) -> Task | None:
        """The annotator's open task if they have one, else a new one; None when nothing is left.

        Raises AnnotatorPaused for a flagged annotator and AnnotatorError for an admin.
        """
        if annotator.role not in LABELLING_ROLES:
            raise AnnotatorError(f"role: {annotator.role!r} accounts do not label; add an annotator account")
        now = self._clock()
        self._sweep_expired(now)
        with self._write() as conn:
            n_served, flagged, role = conn.execute(sa.text(  # locked: one annotator's requests take turns
                f"SELECT n_served, {FLAG_SHOWN}, role FROM annotators WHERE id = :annotator{self._for_update}"),
                {"annotator": annotator.id}).one()
            if flagged:
                raise AnnotatorPaused("paused: an admin is reviewing this account")
            pending = conn.execute(sa.text(
                "SELECT id FROM assignments WHERE annotator_id = :annotator AND status = 'pending' ORDER BY id LIMIT 1"),
                {"annotator": annotator.id}).scalar()
            if pending is not None:
                return _load_task(conn, pending)
            point = asg.order_point(self._gold_secret, annotator.id, n_served)
            real = asg.real_candidate(conn, annotator.id, role, point, self._skip_locked)
            version = None if real is None else conn.execute(sa.text(
                "SELECT guideline_version FROM batches WHERE batch_id = :batch"), {"batch": real.batch_id}).scalar_one()
            gold = asg.gold_candidate(conn, annotator.id, version, None if real is None else real.batch_id)
            turn = is_gold_turn(self._gold_secret, annotator.id, n_served, self.gold_policy)
            chosen = asg.choose(real, gold, turn)
            if chosen is None:
                return None
            assignment_id = conn.execute(sa.text(
                """INSERT INTO assignments (task_id, annotator_id, item_id, content_key, batch_id, role, swapped,
                                            guideline_version, served_at)
                   VALUES (:task, :annotator, :item, :key, :batch, :role, :swapped, :version, :now) RETURNING id"""),
                {"task": new_task_id(), "annotator": annotator.id, "item": chosen.item_id, "key": chosen.content_key,
                 "batch": real.batch_id, "role": role, "swapped": secrets.randbelow(2), "version": version, "now": now},
            ).scalar_one()
            conn.execute(sa.text("UPDATE items SET n_taken = n_taken + 1 WHERE id = :item"), {"item": chosen.item_id})
            conn.execute(sa.text("UPDATE annotators SET n_served = n_served + 1 WHERE id = :annotator"), {"annotator": annotator.id})
            return _load_task(conn, assignment_id)

    def answer(
        self, annotator: Annotator, task_id: str, label: str, dimensions: dict[str, Any] | None = None
    ) -> Receipt:
        """Store an answer given in the annotator's view; the server maps it to the pair's order.

        Time on task is the server's: from serving to this call. Gold answers are checked here and
        a failing annotator is flagged in the same transaction (shown to them and paused only
        `gold_policy.flag_delay` answers later); an answer to a gold key of another guideline
        version than the task's is stored unscored (package docstring).
        """
        if not isinstance(label, str) or label not in CODE:
            raise FieldError("label", f"must be one of {', '.join(SCALE)}")  # never echo what a client sent
        now = self._clock()
        with self._write() as conn:
            self._lock_annotator(conn, annotator.id)
            row = _own_open_task(conn, annotator, task_id, self._for_update)
            assignment_id, status, swapped, batch_id, gold_label, gold_version, task_version = row
            rubric, scale = _batch_rubric(conn, batch_id)
            dims_shown = asg.validate_dimensions(dimensions, rubric, scale)
            pair_label = asg.label_to_pair(label, bool(swapped))
            dims = asg.dimensions_to_pair(dims_shown, bool(swapped))
            comparable = gold_label is not None and gold_version == task_version
            correct = int(is_correct(pair_label, gold_label, self.gold_policy)) if comparable else None
            conn.execute(sa.text(
                """UPDATE assignments SET status = 'answered', answered_at = :now, label = :label, label_shown = :shown,
                     dimensions = :dims, gold_correct = :correct WHERE id = :id"""),
                {"now": now, "label": pair_label, "shown": label, "dims": asg.dumps_dimensions(dims), "correct": correct,
                 "id": assignment_id},
            )
            if status == "expired":  # its lease was released: the answer takes a place again
                conn.execute(sa.text("UPDATE items SET n_taken = n_taken + 1 WHERE id = "
                                     "(SELECT item_id FROM assignments WHERE id = :id)"), {"id": assignment_id})
            answered, skipped, answers, right, flagged = conn.execute(sa.text(
                """UPDATE annotators SET n_answered = n_answered + 1,
                     gold_window_answers = gold_window_answers + :scored, gold_window_correct = gold_window_correct + :right
                   WHERE id = :annotator
                   RETURNING n_answered, n_skipped, gold_window_answers, gold_window_correct, flagged"""),
                {"scored": int(correct is not None), "right": correct or 0, "annotator": annotator.id},
            ).one()
            reason = None if flagged else flag_reason(answers, right, self.gold_policy)
            if reason is not None:
                conn.execute(sa.text(
                    "UPDATE annotators SET flagged = 1, flag_reason = :reason, flagged_at = :now, flag_shown_after = :after "
                    "WHERE id = :annotator"),
                    {"reason": reason, "now": now, "after": answered + self.gold_policy.flag_delay, "annotator": annotator.id},
                )
        return Receipt(task_id, "answered", answered, skipped)

    def skip(self, annotator: Annotator, task_id: str, reason: str) -> Receipt:
        """Skip a task with a reason; the item goes back to others, never to this annotator."""
        if not isinstance(reason, str) or not reason.strip():
            raise FieldError("reason", "a skip needs a reason")
        now = self._clock()
        with self._write() as conn:
            self._lock_annotator(conn, annotator.id)
            assignment_id, status = _own_open_task(conn, annotator, task_id, self._for_update)[:2]
            conn.execute(sa.text("UPDATE assignments SET status = 'skipped', answered_at = :now, skip_reason = :reason WHERE id = :id"),
                         {"now": now, "reason": reason.strip()[:500], "id": assignment_id})
            if status == "pending":  # a live lease: its place goes back to others
                conn.execute(sa.text("UPDATE items SET n_taken = n_taken - 1 WHERE id = "
                                     "(SELECT item_id FROM assignments WHERE id = :id)"), {"id": assignment_id})
            answered, skipped = conn.execute(sa.text(
                "UPDATE annotators SET n_skipped = n_skipped + 1 WHERE id = :annotator RETURNING n_answered, n_skipped"),
                {"annotator": annotator.id}).one()
        return Receipt(task_id, "skipped", answered, skipped)

    def progress(self, annotator: Annotator) -> dict[str, Any]:
        """What the annotator may see about themselves: counts and whether they are paused.

        `flagged` only once the flag is shown (gold_policy.flag_delay). No count of the work left:
        how it moves as tasks are served and answered would show which tasks were gold (gold is
        extra work, so real work left would drop for every task but the gold ones).
        """
        with self._read() as conn:
            args = {"annotator": annotator.id}
            name, role, flagged, answered, skipped = conn.execute(sa.text(
                f"SELECT name, role, {FLAG_SHOWN}, n_answered, n_skipped FROM annotators WHERE id = :annotator"), args).one()
            pending = conn.execute(sa.text(
                "SELECT count(*) FROM assignments WHERE annotator_id = :annotator AND status = 'pending'"), args).scalar_one()
        return {
            "name": name,
            "role": role,
            "flagged": bool(flagged),
            "answered": answered,
            "skipped": skipped,
            "in_progress": pending,
        }

    def _sweep_expired(self, now: float) -> None:
        """Release leases of tasks served long ago and never answered, at most once a minute.

        Its own transaction: the assignments are marked first (each exactly once, even when two
        replicas sweep together: the second finds them no longer pending), then each item gives
        back one place per lease released."""
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        with self._write() as conn:
            released = conn.execute(sa.text(
                "UPDATE assignments SET status = 'expired' WHERE status = 'pending' AND served_at < :cutoff RETURNING item_id"),
                {"cutoff": now - self.lease_s}).scalars().all()
            counts: dict[int, int] = {}
            for item_id in released:
                counts[item_id] = counts.get(item_id, 0) + 1
            if counts:
                conn.execute(sa.text("UPDATE items SET n_taken = n_taken - :n WHERE id = :item"),
                             [{"n": n, "item": item} for item, n in sorted(counts.items())])


def _load_task(conn: sa.Connection, assignment_id: int) -> Task:
    task_id, swapped, version, prompt, a, b, prompt_html, a_html, b_html, rubric, scale = conn.execute(sa.text(
        """SELECT a.task_id, a.swapped, a.guideline_version, i.prompt, i.response_a, i.response_b,
                  i.prompt_html, i.response_a_html, i.response_b_html, b.rubric, b.dimension_scale
           FROM assignments a JOIN items i ON i.id = a.item_id JOIN batches b ON b.batch_id = a.batch_id
           WHERE a.id = :id"""), {"id": assignment_id}).one()
    lo, hi = json.loads(scale)
    shown = [{**dim, "scale": [lo, hi]} for dim in json.loads(rubric)]
    texts = [(t, shown_html(t, stored)) for t, stored in ((prompt, prompt_html), (a, a_html), (b, b_html))]
    first, left, right = (texts[0], texts[2], texts[1]) if swapped else texts
    rendered = {"prompt": first[1], "response_a": left[1], "response_b": right[1]}
    return Task(task_id, first[0], left[0], right[0], shown, version, rendered)


def _own_open_task(conn: sa.Connection, annotator: Annotator, task_id: str, for_update: str) -> tuple:
    """(assignment id, status, swapped, batch id, gold label, gold key version, task version) of the
    annotator's unanswered task; `for_update` locks the assignment, so of two answers sent at once
    the second sees the first and is refused."""
    row = conn.execute(sa.text(
        f"""SELECT a.id, a.status, a.swapped, a.batch_id, i.gold_label, i.gold_version, a.guideline_version, a.annotator_id
            FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.task_id = :task{for_update and ' FOR UPDATE OF a'}"""),
        {"task": task_id}).fetchone()
    if row is None or row[7] != annotator.id:
        raise TaskNotFound(f"task {task_id!r}: no such task for {annotator.name!r}")
    if row[1] in ("answered", "skipped"):
        raise AlreadyAnswered(f"task {task_id!r}: already {row[1]}; the first answer stands")
    return row[:7]


def _batch_rubric(conn: sa.Connection, batch_id: str) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    rubric, scale = conn.execute(sa.text("SELECT rubric, dimension_scale FROM batches WHERE batch_id = :batch"),
                                 {"batch": batch_id}).one()
    lo, hi = json.loads(scale)
    return json.loads(rubric), (int(lo), int(hi))
