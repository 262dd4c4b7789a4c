"""Annotator accounts: creating them with a secret token, disabling, lifting a gold flag, and the
admins' list with counts and gold accuracy (and, for the admin page, its interval, time on task and
last seen). (Signing in, sessions and rotation: sessions.py.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from prefpipe.annotate.errors import AnnotatorError
from prefpipe.annotate.store.admin import GOLD_CONFIDENCE, annotator_activity, wilson_interval
from prefpipe.annotate.store.schema import TOKEN_TTL_S, StoreBase
from prefpipe.annotate.store.values import iso_utc
from prefpipe.annotate.tokens import hash_token, new_token

ROLES = ("annotator", "expert", "admin")
LABELLING_ROLES = ("annotator", "expert")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
FLAG_SHOWN = "(flagged = 1 AND n_answered >= COALESCE(flag_shown_after, 0))"
"""SQL over `annotators`: flagged, and told so (paused) now that the delay after the flag point is over."""


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str
    role: str
    flagged: bool


class AnnotatorsMixin(StoreBase):
    """The `annotators` table: accounts, tokens and flag state."""

    def add_annotator(self, name: str, role: str = "annotator", *, ttl_s: float = TOKEN_TTL_S) -> str:
        """Create an annotator and return their secret token (shown once; only its hash is kept),
        valid for `ttl_s` seconds."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise AnnotatorError(
                f"name: {name!r} must be 1-64 letters, digits or _.@- and start with a letter or digit"
            )
        if role not in ROLES:
            raise AnnotatorError(f"role: {role!r} must be one of {', '.join(ROLES)}")
        token = new_token()
        now = self._clock()
        try:
            with self._write() as conn:
                conn.execute(sa.text(
                    "INSERT INTO annotators (name, role, token_hash, token_expires_at, created_at) "
                    "VALUES (:name, :role, :hash, :expires, :now)"),
                    {"name": name, "role": role, "hash": hash_token(token), "expires": now + float(ttl_s), "now": now},
                )
        except sa.exc.IntegrityError as exc:
            raise AnnotatorError(f"name: an annotator called {name!r} already exists") from exc
        return token

    def disable(self, name: str) -> None:
        """Revoke an annotator's token; their stored work is kept."""
        self._set_annotator(name, "disabled = 1")

    def unflag(self, name: str) -> None:
        """Lift a gold flag; the gold count starts afresh so one more slip does not re-flag at once."""
        self._set_annotator(
            name, "flagged = 0, flag_reason = NULL, flagged_at = NULL, flag_shown_after = NULL, "
                  "gold_window_answers = 0, gold_window_correct = 0"
        )

    def _set_annotator(self, name: str, assignments_sql: str) -> None:
        with self._write() as conn:
            cur = conn.execute(sa.text(f"UPDATE annotators SET {assignments_sql} WHERE name = :name"), {"name": name})
            if cur.rowcount == 0:
                raise AnnotatorError(f"name: no annotator called {name!r}")

    def list_annotators(self) -> list[dict[str, Any]]:
        """Every annotator with role, state, counts and all-time gold accuracy (for admins).

        `flagged` is the flag as the data sees it (from the flag point on); `flag_shown` whether
        the annotator is told yet (a rubric's gold_flag_delay_answers holds it back)."""
        with self._read() as conn:
            rows = _annotator_rows(conn)
        for row in rows:
            del row["id"]
        return rows

    def annotator_report(self) -> list[dict[str, Any]]:
        """list_annotators with what the admin page adds: the GOLD_CONFIDENCE Wilson interval of
        gold accuracy (`gold_ci_low`, `gold_ci_high`; None without gold answers), the median
        seconds from serving a task to its answer (`median_time_on_task_s`, measured by the server)
        and when the store last saw them act (`last_seen_at`: a sign-in, a task served, an answer or
        a skip), both None when there is nothing to go by."""
        with self._read() as conn:
            rows = _annotator_rows(conn)
            activity = annotator_activity(conn)
        out = []
        for row in rows:
            median_s, last_seen = activity.get(row.pop("id"), (None, None))
            interval = wilson_interval(row["gold_correct"], row["gold_answers"]) or (None, None)
            out.append({**row, "gold_ci_low": interval[0], "gold_ci_high": interval[1], "gold_confidence": GOLD_CONFIDENCE,
                        "median_time_on_task_s": median_s, "last_seen_at": iso_utc(last_seen)})
        return out


_ANNOTATOR_ROWS = f"""
SELECT an.id, an.name, an.role, an.disabled, an.flagged, an.flag_reason, an.flagged_at,
       an.n_answered, an.n_skipped,
       COALESCE(g.answers, 0), COALESCE(g.correct, 0), an.created_at, an.token_expires_at, {FLAG_SHOWN}
FROM annotators an
LEFT JOIN (SELECT a.annotator_id, count(*) AS answers, sum(a.gold_correct) AS correct
           FROM items i JOIN assignments a ON a.item_id = i.id
           WHERE i.queue = 'gold' AND a.gold_correct IS NOT NULL GROUP BY a.annotator_id) g
  ON g.annotator_id = an.id
ORDER BY an.name
"""
"""Gold answers are found from the gold items (a few hundred, on a partial index) rather than by
reading every answer: on a store of millions of answers this is the difference between
milliseconds and seconds."""


def _annotator_rows(conn: sa.Connection) -> list[dict[str, Any]]:
    return [
        {
            "id": annotator_id,
            "name": name,
            "role": role,
            "disabled": bool(disabled),
            "flagged": bool(flagged),
            "flag_reason": reason,
            "flagged_at": iso_utc(flagged_at),
            "answered": answered,
            "skipped": skipped,
            "gold_answers": int(gold_answers),
            "gold_correct": int(gold_correct),
            "gold_accuracy": (gold_correct / gold_answers) if gold_answers else None,
            "created_at": iso_utc(created),
            "token_expires_at": iso_utc(expires),
            "flag_shown": bool(shown),
        }
        for (annotator_id, name, role, disabled, flagged, reason, flagged_at, answered, skipped, gold_answers, gold_correct,
             created, expires, shown) in conn.execute(sa.text(_ANNOTATOR_ROWS)).all()
    ]
