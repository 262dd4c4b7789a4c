"""Which task an annotator gets next, and how their view maps back to the pair.

Rules, enforced here and by the store's constraints:
- each item is labelled by `labels_wanted` distinct annotators (`items.n_taken` counts answers and
  live leases);
- an annotator never gets the same pair twice, in any batch or queue (the pair's content key is
  unique per annotator in `assignments`), so a gold pair can never be recognised as a repeat;
- experts are served the expert queue first, then the ordinary queue; others the ordinary queue;
- within the highest priority left, each annotator takes tasks in their own random order: items
  carry a random shuffle key, and each step the annotator takes the first open item at or after a
  point drawn from a keyed hash of the store's secret, their id and the step (wrapping round). The
  order is the server's alone and the same on every request, but no two annotators share it, so
  colluders comparing what they were served cannot pick out gold as "what broke the common order";
- gold fills the gold slots (see gold.py) and only alongside a real task, so an annotator with
  nothing real left gets 204, never a lone gold task; gold loaded with scope "batch" stands in
  only for a task of its own batch, so one batch's annotators never see another batch's gold.

Both candidate queries run for every request, whichever one is served, so a gold task costs the
server exactly the same work as any other and cannot be told apart by its timing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from prefpipe.annotate.errors import FieldError
from prefpipe.annotate.tokens import keyed_number
from prefpipe.core.labels import SWAP

HUMAN_QUEUE = "human"
EXPERT_QUEUE = "expert"
GOLD_QUEUE = "gold"
ROUTE_TO_QUEUE = {"human": HUMAN_QUEUE, "spot_check": HUMAN_QUEUE, "expert": EXPERT_QUEUE}


@dataclass(frozen=True)
class Candidate:
    item_id: int
    batch_id: str
    content_key: str


_OPEN = """queue = :queue AND n_taken < labels_wanted
  AND content_key NOT IN (SELECT content_key FROM assignments WHERE annotator_id = :annotator)"""

_REAL_CANDIDATE = """
WITH top AS (SELECT priority FROM items WHERE {open} ORDER BY priority DESC LIMIT 1{lock})
SELECT id, batch_id, content_key FROM items
WHERE {open} AND priority = (SELECT priority FROM top) AND shuffle_key {side} :point
ORDER BY shuffle_key LIMIT 1{lock}
"""
"""The first open item at (`>=`) or, wrapping round, before (`<`) the annotator's point, in the
highest priority left. `lock` is empty on SQLite (its one writer needs none) and on PostgreSQL
`FOR UPDATE SKIP LOCKED` (a pick another replica is making is passed over, and the row picked is
re-checked against `n_taken < labels_wanted` once locked) or, when that finds nothing because
every open item is being picked, `FOR UPDATE` (wait for them, then re-check)."""

_GOLD_CANDIDATE = """
SELECT id, batch_id, content_key FROM items
WHERE queue = 'gold' AND (gold_scope = 'global' OR batch_id = :batch)
  AND content_key NOT IN (SELECT content_key FROM assignments WHERE annotator_id = :annotator)
ORDER BY (gold_version IS NOT DISTINCT FROM :version) DESC, random() LIMIT 1
"""


def queues_for(role: str) -> tuple[str, ...]:
    return (EXPERT_QUEUE, HUMAN_QUEUE) if role == "expert" else (HUMAN_QUEUE,)


def order_point(secret: bytes, annotator_id: int, step: int) -> int:
    """Where in the shuffle-key order (63 bits, like the keys) the annotator's `step`-th task is taken."""
    return keyed_number(secret, f"order:{annotator_id}:{step}") >> 1


def real_candidate(conn: sa.Connection, annotator_id: int, role: str, point: int, lock: str = "") -> Candidate | None:
    """The next real task: the highest priority left, and in it the first item at or after `point`
    (`lock`: see _REAL_CANDIDATE)."""
    args = {"queue": "", "annotator": annotator_id, "point": point}
    locks = (lock, " FOR UPDATE") if lock else ("",)
    for attempt in locks:
        for queue in queues_for(role):
            args["queue"] = queue
            # both sides, always: the same work whichever is taken (a wrap must not be told apart by timing)
            at_or_after, before = (conn.execute(sa.text(_REAL_CANDIDATE.format(open=_OPEN, lock=attempt, side=side)), args).fetchone()
                                   for side in (">=", "<"))
            row = at_or_after or before
            if row is not None:
                return Candidate(*row)
    return None


def gold_candidate(conn: sa.Connection, annotator_id: int, version: str | None, batch_id: str | None) -> Candidate | None:
    """A gold pair the annotator has not seen that may stand in for a task of `batch_id` (its own
    batch's, or global gold), one whose key is of `version` (the guideline version the task will
    be shown with) first: only those can be scored; others are served when no current key is left,
    so the gold rate stays the same and gives nothing away."""
    row = conn.execute(sa.text(_GOLD_CANDIDATE), {"batch": batch_id, "annotator": annotator_id, "version": version}).fetchone()
    return Candidate(*row) if row is not None else None


def choose(real: Candidate | None, gold: Candidate | None, gold_turn: bool) -> Candidate | None:
    if real is None:
        return None
    return gold if (gold_turn and gold is not None) else real


# --- the annotator's view <-> the pair's own order -------------------------------------------


def label_to_pair(label_shown: str, swapped: bool) -> str:
    return SWAP[label_shown] if swapped else label_shown


def dimensions_to_pair(dimensions_shown: dict[str, dict[str, int]], swapped: bool) -> dict[str, dict[str, int]]:
    if not swapped:
        return {name: dict(scores) for name, scores in dimensions_shown.items()}
    swap_side = {"A": "B", "B": "A"}
    return {name: {swap_side[side]: v for side, v in scores.items()} for name, scores in dimensions_shown.items()}


def validate_dimensions(dimensions: Any, rubric: list[dict[str, Any]], scale: tuple[int, int]) -> dict[str, dict[str, int]]:
    """Rubric scores: {dimension: {"A": score, "B": score}}, any subset of the rubric's dimensions.

    Raises FieldError naming the first bad field, e.g. 'dimensions.helpfulness.A', and saying why
    without repeating the value (the message goes back to the HTTP client).
    """
    if dimensions is None:
        return {}
    if not isinstance(dimensions, dict):
        raise FieldError("dimensions", "must be an object of {dimension: {'A': score, 'B': score}}")
    names = {str(d["name"]) for d in rubric}
    lo, hi = scale
    out: dict[str, dict[str, int]] = {}
    for name, scores in dimensions.items():
        field = f"dimensions.{name}"
        if name not in names:
            raise FieldError(field, f"not a rubric dimension (expected one of {', '.join(sorted(names))})")
        if not isinstance(scores, dict):
            raise FieldError(field, "must be an object with scores for 'A' and/or 'B'")
        clean: dict[str, int] = {}
        for side, value in scores.items():
            if side not in ("A", "B"):
                raise FieldError(f"{field}.{side}", "only 'A' and 'B' can be scored")
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise FieldError(f"{field}.{side}", f"must be an integer score from {lo} to {hi}")
            clean[side] = value
        out[name] = clean
    return out


def dumps_dimensions(dimensions: dict[str, dict[str, int]]) -> str:
    return json.dumps(dimensions, sort_keys=True, separators=(",", ":"))
