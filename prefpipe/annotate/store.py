"""The operational annotation store: one SQLite file in WAL mode, shared by many writers.

The annotation app, the `prefpipe` CLI and the Dagster assets all open the same file
(`settings.annotation_store_path()` by default). WAL lets readers run beside the one writer, every
write is a short `BEGIN IMMEDIATE` transaction, and a busy timeout makes a second process wait its
turn instead of failing. Inside one process a lock serialises the connection, so the app can hand
work to it from any thread. `synchronous=FULL`: a stored answer survives a power cut, because
nothing submitted may be lost.

Tables: `annotators` (token hashes, role, flag state), `batches` (guideline version and rubric
shown with a batch's tasks), `items` (one row per pair and queue: human, expert or gold), and
`assignments` (one row per task served to an annotator, with the left/right order they saw, the
server's timestamps and their answer in the pair's own order).

Gold is a global pool: gold pairs are stored with the batch they were loaded with (for the
record), but are served to annotators working on any batch. A gold answer is reported with the
batch the annotator was working on when it was served (the batch of the real task it stood in for),
so each batch's annotations carry the gold evidence about the people who labelled it.

A gold answer key is part of the guidelines (docs/operations.md, gold re-check policy): each gold
item carries the guideline version its key was written or last confirmed under (`gold_version`),
and an answer is scored only against a key of the version shown with the task. Answers to a key
of another version are stored unscored: they flag no one and leave the batch's gold accuracy, until
an expert re-checks the key (`recheck_gold`, `prefpipe gold recheck`), which re-stamps it with the
current version and scores the answers given under that version (for the record and the reports;
the live flag counts only answers scored as they came in). Reloading a gold file with the same
label is not a re-check; a changed label is a new key under the batch's version.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefpipe import settings
from prefpipe.annotate import assignment as asg
from prefpipe.annotate.errors import (
    AlreadyAnswered,
    AnnotatorError,
    AnnotatorPaused,
    FieldError,
    TaskNotFound,
)
from prefpipe.annotate.gold import GoldPolicy, flag_reason, is_correct, is_gold_turn
from prefpipe.annotate.tokens import hash_token, new_task_id, new_token
from prefpipe.labels import CODE, SCALE

if TYPE_CHECKING:
    import pandas as pd

ROLES = ("annotator", "expert", "admin")
LABELLING_ROLES = ("annotator", "expert")
SCHEMA_VERSION = 2
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
SWEEP_EVERY_S = 60.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS annotators (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('annotator', 'expert', 'admin')),
        token_hash TEXT NOT NULL UNIQUE,
        disabled INTEGER NOT NULL DEFAULT 0,
        flagged INTEGER NOT NULL DEFAULT 0,
        flag_reason TEXT,
        flagged_at REAL,
        n_served INTEGER NOT NULL DEFAULT 0,
        n_answered INTEGER NOT NULL DEFAULT 0,
        n_skipped INTEGER NOT NULL DEFAULT 0,
        gold_window_answers INTEGER NOT NULL DEFAULT 0,  -- since the last unflag
        gold_window_correct INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id TEXT PRIMARY KEY,
        guideline_version TEXT NOT NULL,
        rubric TEXT NOT NULL,
        dimension_scale TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL REFERENCES batches (batch_id),
        pair_id TEXT NOT NULL,
        queue TEXT NOT NULL CHECK (queue IN ('human', 'expert', 'gold')),
        route TEXT NOT NULL,
        prompt TEXT NOT NULL,
        response_a TEXT NOT NULL,
        response_b TEXT NOT NULL,
        content_key TEXT NOT NULL,
        priority REAL NOT NULL,
        labels_wanted INTEGER NOT NULL,
        n_taken INTEGER NOT NULL DEFAULT 0,  -- answers plus live leases
        gold_label TEXT,
        gold_version TEXT,  -- guideline version the gold key was written or last confirmed under
        gold_checked_by TEXT,  -- the expert who last re-checked the key
        gold_checked_at REAL,
        enqueued_at REAL NOT NULL,
        UNIQUE (batch_id, pair_id, queue)
    )""",
    """CREATE INDEX IF NOT EXISTS items_open ON items (queue, priority DESC, id)
        WHERE n_taken < labels_wanted""",
    """CREATE INDEX IF NOT EXISTS items_gold ON items (queue) WHERE queue = 'gold'""",
    """CREATE TABLE IF NOT EXISTS assignments (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        annotator_id INTEGER NOT NULL REFERENCES annotators (id),
        item_id INTEGER NOT NULL REFERENCES items (id),
        content_key TEXT NOT NULL,
        batch_id TEXT NOT NULL,  -- the batch the annotator was working on when served
        role TEXT NOT NULL,
        swapped INTEGER NOT NULL,  -- 1 when the pair's B was shown on the left, as "A"
        guideline_version TEXT NOT NULL,  -- the version shown with the task
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'expired', 'answered', 'skipped')),
        served_at REAL NOT NULL,
        answered_at REAL,
        label TEXT,  -- in the pair's own order
        label_shown TEXT,  -- as the annotator chose it
        dimensions TEXT,  -- JSON, in the pair's own order
        skip_reason TEXT,
        gold_correct INTEGER,
        UNIQUE (annotator_id, content_key)
    )""",
    """CREATE INDEX IF NOT EXISTS assignments_pending ON assignments (annotator_id) WHERE status = 'pending'""",
    """CREATE INDEX IF NOT EXISTS assignments_lease ON assignments (served_at) WHERE status = 'pending'""",
    """CREATE INDEX IF NOT EXISTS assignments_item ON assignments (item_id)""",
    """CREATE INDEX IF NOT EXISTS assignments_batch ON assignments (batch_id, status)""",
)


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str
    role: str
    flagged: bool


@dataclass(frozen=True)
class Task:
    """One task as the annotator sees it: A and B already in their order."""

    task_id: str
    prompt: str
    response_a: str
    response_b: str
    rubric: list[dict[str, Any]]
    guideline_version: str

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


def content_key(prompt: str, response_a: str, response_b: str) -> str:
    """Identifies a pair by content, whatever its id or order, so nobody meets it twice."""
    first, second = sorted((response_a, response_b))
    digest = hashlib.sha256()
    for part in (prompt, first, second):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def iso_utc(ts: float | None) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(round((ts % 1) * 1000)) % 1000:03d}Z"


class AnnotationStore:
    """The shared SQLite store. Cheap to open; open one per process (or per asset run) and reuse it."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        gold_policy: GoldPolicy | None = None,
        lease_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else settings.annotation_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.gold_policy = gold_policy or GoldPolicy()
        self.lease_s = float(lease_s)
        self._clock = clock
        self._lock = threading.RLock()
        self._last_sweep = float("-inf")
        self._in_group = False
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA busy_timeout = 30000")
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            _migrate(conn)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('gold_secret', ?)", (secrets.token_bytes(32),))
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            self._gold_secret = bytes(conn.execute("SELECT value FROM meta WHERE key = 'gold_secret'").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AnnotationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, rolled back whole on any error.

        Inside `group()` it is a savepoint instead: the operation is undone alone on error and
        committed with the group.
        """
        with self._lock:
            if self._in_group:
                self._conn.execute("SAVEPOINT op")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK TO op")
                    self._conn.execute("RELEASE op")
                    raise
                self._conn.execute("RELEASE op")
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def group(self, *, durable: bool = True) -> Iterator[None]:
        """Run several operations in one transaction with one commit (one fsync): group commit.

        Each operation inside is isolated by a savepoint, so one that fails leaves the others
        alone. Nothing is durable, and no caller should be told it is, until the block exits.
        `durable=False` commits without waiting for the disk (WAL, synchronous=NORMAL): safe
        against a crash of the app, not of the machine. The app uses it only for groups that
        serve tasks and read progress, never for one that stores an answer; the next durable
        commit makes everything before it durable too.
        """
        with self._lock:
            if self._in_group:
                raise RuntimeError("AnnotationStore.group() does not nest")
            if not durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._in_group = True
                try:
                    yield
                except BaseException:
                    self._in_group = False
                    self._conn.execute("ROLLBACK")
                    raise
                self._in_group = False
                self._conn.execute("COMMIT")
            finally:
                if not durable:
                    self._conn.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads spanning several statements."""
        with self._lock:
            if self._in_group:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # --- annotators -------------------------------------------------------------------------

    def add_annotator(self, name: str, role: str = "annotator") -> str:
        """Create an annotator and return their secret token (shown once; only its hash is kept)."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise AnnotatorError(
                f"name: {name!r} must be 1-64 letters, digits or _.@- and start with a letter or digit"
            )
        if role not in ROLES:
            raise AnnotatorError(f"role: {role!r} must be one of {', '.join(ROLES)}")
        token = new_token()
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO annotators (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)",
                    (name, role, hash_token(token), self._clock()),
                )
        except sqlite3.IntegrityError as exc:
            raise AnnotatorError(f"name: an annotator called {name!r} already exists") from exc
        return token

    def authenticate(self, token: str | None) -> Annotator | None:
        """The enabled annotator holding this token, or None."""
        if not token:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT id, name, role, flagged FROM annotators WHERE token_hash = ? AND disabled = 0",
                (hash_token(token),),
            ).fetchone()
        return Annotator(row[0], row[1], row[2], bool(row[3])) if row else None

    def disable(self, name: str) -> None:
        """Revoke an annotator's token; their stored work is kept."""
        self._set_annotator(name, "disabled = 1")

    def unflag(self, name: str) -> None:
        """Lift a gold flag; the gold count starts afresh so one more slip does not re-flag at once."""
        self._set_annotator(
            name, "flagged = 0, flag_reason = NULL, flagged_at = NULL, gold_window_answers = 0, gold_window_correct = 0"
        )

    def _set_annotator(self, name: str, assignments_sql: str) -> None:
        with self._write() as conn:
            cur = conn.execute(f"UPDATE annotators SET {assignments_sql} WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise AnnotatorError(f"name: no annotator called {name!r}")

    def list_annotators(self) -> list[dict[str, Any]]:
        """Every annotator with role, state, counts and all-time gold accuracy (for admins)."""
        sql = """
        SELECT an.name, an.role, an.disabled, an.flagged, an.flag_reason, an.flagged_at,
               an.n_answered, an.n_skipped,
               COALESCE(g.answers, 0), COALESCE(g.correct, 0), an.created_at
        FROM annotators an
        LEFT JOIN (SELECT annotator_id, count(*) AS answers, sum(gold_correct) AS correct
                   FROM assignments WHERE gold_correct IS NOT NULL GROUP BY annotator_id) g
          ON g.annotator_id = an.id
        ORDER BY an.name
        """
        with self._read() as conn:
            rows = conn.execute(sql).fetchall()
        return [
            {
                "name": name,
                "role": role,
                "disabled": bool(disabled),
                "flagged": bool(flagged),
                "flag_reason": reason,
                "flagged_at": iso_utc(flagged_at),
                "answered": answered,
                "skipped": skipped,
                "gold_answers": gold_answers,
                "gold_correct": gold_correct,
                "gold_accuracy": (gold_correct / gold_answers) if gold_answers else None,
                "created_at": iso_utc(created),
            }
            for name, role, disabled, flagged, reason, flagged_at, answered, skipped, gold_answers, gold_correct, created in rows
        ]

    # --- the queue --------------------------------------------------------------------------

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
        Everything is validated before anything is written.
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
        rubric_json = json.dumps(_check_rubric(rubric), separators=(",", ":"))
        lo, hi = int(dimension_scale[0]), int(dimension_scale[1])
        if lo >= hi:
            raise FieldError("dimension_scale", f"{dimension_scale!r} must be (low, high) with low < high")
        frames = [_prepare_tasks(tasks, int(per_item), int(expert_per_item))]
        if gold is not None:
            frames.append(_prepare_gold(gold))
        incoming = pd.concat(frames, ignore_index=True)
        now = self._clock()
        counts = {"inserted": 0, "updated": 0, "unchanged": 0, "text_kept": 0, "gold_inserted": 0, "gold_updated": 0}
        with self._write() as conn:
            conn.execute(
                """INSERT INTO batches (batch_id, guideline_version, rubric, dimension_scale, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (batch_id) DO UPDATE SET guideline_version = excluded.guideline_version,
                     rubric = excluded.rubric, dimension_scale = excluded.dimension_scale,
                     updated_at = excluded.updated_at""",
                (batch_id, guideline_version, rubric_json, json.dumps([lo, hi]), now),
            )
            existing = pd.DataFrame(
                conn.execute(
                    """SELECT id, pair_id, queue, route, prompt, response_a, response_b, priority, labels_wanted,
                              gold_label, EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = items.id) AS served
                       FROM items WHERE batch_id = ?""",
                    (batch_id,),
                ).fetchall(),
                columns=["id", "pair_id", "queue", "route", "prompt", "response_a", "response_b", "priority",
                         "labels_wanted", "gold_label", "served"],
            )
            merged = incoming.merge(existing, on=["pair_id", "queue"], how="left", suffixes=("", "_old"), indicator=True)
            is_gold = merged["queue"].eq(asg.GOLD_QUEUE)
            new = merged[merged["_merge"].eq("left_only")]
            conn.executemany(
                """INSERT INTO items (batch_id, pair_id, queue, route, prompt, response_a, response_b, content_key,
                                      priority, labels_wanted, gold_label, gold_version, enqueued_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (batch_id, r.pair_id, r.queue, r.route, r.prompt, r.response_a, r.response_b, r.content_key,
                     float(r.priority), int(r.labels_wanted), r.gold_label,
                     guideline_version if r.queue == asg.GOLD_QUEUE else None, now)
                    for r in new.itertuples(index=False)
                ],
            )
            old = merged[merged["_merge"].eq("both")]
            text_cols = ["prompt", "response_a", "response_b"]
            text_changed = pd.Series(False, index=old.index)
            for col in text_cols:
                text_changed |= old[col].ne(old[f"{col}_old"])
            keep_text = text_changed & old["served"].astype(bool)
            take_text = text_changed & ~keep_text
            meta_changed = (
                old["route"].ne(old["route_old"])
                | old["priority"].astype(float).ne(old["priority_old"].astype(float))
                | old["labels_wanted"].astype(int).ne(old["labels_wanted_old"].astype(int))
                | old["gold_label"].fillna("").ne(old["gold_label_old"].fillna(""))
            )
            changed = old[meta_changed | take_text]
            updates = []
            for r, new_text in zip(changed.itertuples(index=False), take_text[changed.index]):
                prompt, a, b, key = ((r.prompt, r.response_a, r.response_b, r.content_key) if new_text
                                     else (r.prompt_old, r.response_a_old, r.response_b_old, None))
                updates.append(dict(route=r.route, priority=float(r.priority), wanted=int(r.labels_wanted), gold=r.gold_label,
                                    version=guideline_version, prompt=prompt, a=a, b=b, key=key, id=int(r.id)))
            conn.executemany(
                """UPDATE items SET route = :route, priority = :priority, labels_wanted = :wanted,
                     gold_version = CASE WHEN queue = 'gold' AND gold_label IS NOT :gold THEN :version ELSE gold_version END,
                     gold_checked_by = CASE WHEN queue = 'gold' AND gold_label IS NOT :gold THEN NULL ELSE gold_checked_by END,
                     gold_checked_at = CASE WHEN queue = 'gold' AND gold_label IS NOT :gold THEN NULL ELSE gold_checked_at END,
                     gold_label = :gold,
                     prompt = :prompt, response_a = :a, response_b = :b, content_key = COALESCE(:key, content_key)
                   WHERE id = :id""",
                updates,
            )
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
            items, wanted = conn.execute(
                "SELECT count(*), COALESCE(sum(labels_wanted), 0) FROM items WHERE batch_id = ? AND queue != 'gold'",
                (batch_id,),
            ).fetchone()
            by_status = dict(
                conn.execute(
                    "SELECT status, count(*) FROM assignments WHERE batch_id = ? GROUP BY status", (batch_id,)
                ).fetchall()
            )
            gold = conn.execute("SELECT count(*) FROM items WHERE batch_id = ? AND queue = 'gold'", (batch_id,)).fetchone()[0]
        return {
            "items": int(items),
            "gold_items": int(gold),
            "labels_wanted": int(wanted),
            "answered": int(by_status.get("answered", 0)),
            "skipped": int(by_status.get("skipped", 0)),
            "pending": int(by_status.get("pending", 0)),
        }

    # --- serving and answering --------------------------------------------------------------

    def next_task(self, annotator: Annotator) -> Task | None:
        """The annotator's open task if they have one, else a new one; None when nothing is left.

        Raises AnnotatorPaused for a flagged annotator and AnnotatorError for an admin.
        """
        if annotator.role not in LABELLING_ROLES:
            raise AnnotatorError(f"role: {annotator.role!r} accounts do not label; add an annotator account")
        now = self._clock()
        with self._write() as conn:
            self._sweep_expired(conn, now)
            n_served, flagged, role = conn.execute(
                "SELECT n_served, flagged, role FROM annotators WHERE id = ?", (annotator.id,)
            ).fetchone()
            if flagged:
                raise AnnotatorPaused("paused: an admin is reviewing this account")
            pending = conn.execute(
                "SELECT id FROM assignments WHERE annotator_id = ? AND status = 'pending' ORDER BY id LIMIT 1",
                (annotator.id,),
            ).fetchone()
            if pending is not None:
                return _load_task(conn, pending[0])
            real = asg.real_candidate(conn, annotator.id, role)
            version = None if real is None else conn.execute(
                "SELECT guideline_version FROM batches WHERE batch_id = ?", (real.batch_id,)).fetchone()[0]
            gold = asg.gold_candidate(conn, annotator.id, version)
            turn = is_gold_turn(self._gold_secret, annotator.id, n_served, self.gold_policy)
            chosen = asg.choose(real, gold, turn)
            if chosen is None:
                return None
            cur = conn.execute(
                """INSERT INTO assignments (task_id, annotator_id, item_id, content_key, batch_id, role, swapped,
                                            guideline_version, served_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (new_task_id(), annotator.id, chosen.item_id, chosen.content_key, real.batch_id, role,
                 secrets.randbelow(2), version, now),
            )
            conn.execute("UPDATE items SET n_taken = n_taken + 1 WHERE id = ?", (chosen.item_id,))
            conn.execute("UPDATE annotators SET n_served = n_served + 1 WHERE id = ?", (annotator.id,))
            return _load_task(conn, cur.lastrowid)

    def answer(
        self, annotator: Annotator, task_id: str, label: str, dimensions: dict[str, Any] | None = None
    ) -> Receipt:
        """Store an answer given in the annotator's view; the server maps it to the pair's order.

        Time on task is the server's: from serving to this call. Gold answers are checked here and
        a failing annotator is flagged in the same transaction; an answer to a gold key of another
        guideline version than the task's is stored unscored (module docstring).
        """
        if not isinstance(label, str) or label not in CODE:
            raise FieldError("label", f"{label!r} is not on the scale {', '.join(SCALE)}")
        now = self._clock()
        with self._write() as conn:
            row = _own_open_task(conn, annotator, task_id)
            assignment_id, status, swapped, batch_id, gold_label, gold_version, task_version = row
            rubric, scale = _batch_rubric(conn, batch_id)
            dims_shown = asg.validate_dimensions(dimensions, rubric, scale)
            pair_label = asg.label_to_pair(label, bool(swapped))
            dims = asg.dimensions_to_pair(dims_shown, bool(swapped))
            comparable = gold_label is not None and gold_version == task_version
            correct = int(is_correct(pair_label, gold_label, self.gold_policy)) if comparable else None
            conn.execute(
                """UPDATE assignments SET status = 'answered', answered_at = ?, label = ?, label_shown = ?,
                     dimensions = ?, gold_correct = ? WHERE id = ?""",
                (now, pair_label, label, asg.dumps_dimensions(dims), correct, assignment_id),
            )
            conn.execute("UPDATE items SET n_taken = n_taken + ? WHERE id = (SELECT item_id FROM assignments WHERE id = ?)",
                         (int(status == "expired"), assignment_id))
            answered, skipped, answers, right, flagged = conn.execute(
                """UPDATE annotators SET n_answered = n_answered + 1,
                     gold_window_answers = gold_window_answers + ?, gold_window_correct = gold_window_correct + ?
                   WHERE id = ?
                   RETURNING n_answered, n_skipped, gold_window_answers, gold_window_correct, flagged""",
                (int(correct is not None), correct or 0, annotator.id),
            ).fetchone()
            reason = None if flagged else flag_reason(answers, right, self.gold_policy)
            if reason is not None:
                conn.execute(
                    "UPDATE annotators SET flagged = 1, flag_reason = ?, flagged_at = ? WHERE id = ?",
                    (reason, now, annotator.id),
                )
        return Receipt(task_id, "answered", answered, skipped)

    def skip(self, annotator: Annotator, task_id: str, reason: str) -> Receipt:
        """Skip a task with a reason; the item goes back to others, never to this annotator."""
        if not isinstance(reason, str) or not reason.strip():
            raise FieldError("reason", "a skip needs a reason")
        now = self._clock()
        with self._write() as conn:
            assignment_id, status = _own_open_task(conn, annotator, task_id)[:2]
            conn.execute(
                "UPDATE assignments SET status = 'skipped', answered_at = ?, skip_reason = ? WHERE id = ?",
                (now, reason.strip()[:500], assignment_id),
            )
            conn.execute("UPDATE items SET n_taken = n_taken - ? WHERE id = (SELECT item_id FROM assignments WHERE id = ?)",
                         (int(status == "pending"), assignment_id))
            answered, skipped = conn.execute(
                "UPDATE annotators SET n_skipped = n_skipped + 1 WHERE id = ? RETURNING n_answered, n_skipped",
                (annotator.id,),
            ).fetchone()
        return Receipt(task_id, "skipped", answered, skipped)

    def progress(self, annotator: Annotator) -> dict[str, Any]:
        """What the annotator may see about themselves: counts and whether they are paused.

        No count of the work left: how it moves as tasks are served and answered would show
        which tasks were gold (gold is extra work, so real work left would drop for every task
        but the gold ones).
        """
        with self._read() as conn:
            name, role, flagged, answered, skipped = conn.execute(
                "SELECT name, role, flagged, n_answered, n_skipped FROM annotators WHERE id = ?", (annotator.id,)
            ).fetchone()
            pending = conn.execute(
                "SELECT count(*) FROM assignments WHERE annotator_id = ? AND status = 'pending'", (annotator.id,)
            ).fetchone()[0]
        return {
            "name": name,
            "role": role,
            "flagged": bool(flagged),
            "answered": answered,
            "skipped": skipped,
            "in_progress": pending,
        }

    def _sweep_expired(self, conn: sqlite3.Connection, now: float) -> None:
        """Release leases of tasks served long ago and never answered, at most once a minute."""
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        cutoff = now - self.lease_s
        conn.execute(
            """UPDATE items SET n_taken = n_taken - (
                   SELECT count(*) FROM assignments a
                   WHERE a.item_id = items.id AND a.status = 'pending' AND a.served_at < ?)
               WHERE id IN (SELECT item_id FROM assignments WHERE status = 'pending' AND served_at < ?)""",
            (cutoff, cutoff),
        )
        conn.execute("UPDATE assignments SET status = 'expired' WHERE status = 'pending' AND served_at < ?", (cutoff,))

    # --- gold keys and their guideline versions -------------------------------------------

    def gold_items(self, current_version: str | None = None) -> pd.DataFrame:
        """Every gold pair with its key, the version the key was written or confirmed under, who
        last re-checked it, how many answers it has and how many of them await a re-check; `stale`
        is True where the key's version is not `current_version` (None: nothing is stale)."""
        import pandas as pd

        with self._read() as conn:
            rows = conn.execute(
                """SELECT i.batch_id, i.pair_id, i.gold_label, i.gold_version, i.gold_checked_by, i.gold_checked_at,
                          i.prompt, i.response_a, i.response_b,
                          count(a.id) FILTER (WHERE a.status = 'answered'),
                          count(a.id) FILTER (WHERE a.status = 'answered' AND a.gold_correct IS NULL)
                   FROM items i LEFT JOIN assignments a ON a.item_id = i.id
                   WHERE i.queue = 'gold' GROUP BY i.id ORDER BY i.batch_id, i.pair_id""",
            ).fetchall()
        frame = pd.DataFrame(rows, columns=["batch_id", "pair_id", "gold_label", "gold_version", "checked_by", "checked_at",
                                            "prompt", "response_a", "response_b", "answers", "answers_awaiting_recheck"])
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
            who = conn.execute("SELECT role, disabled FROM annotators WHERE name = ?", (expert,)).fetchone()
            if who is None or who[1] or who[0] not in ("expert", "admin"):
                raise AnnotatorError(f"expert: {expert!r} is not an active expert or admin account")
            sql = "SELECT id, batch_id, gold_label, content_key FROM items WHERE queue = 'gold' AND pair_id = ?"
            params: tuple = (pair_id,)
            if batch_id is not None:
                sql += " AND batch_id = ?"
                params += (batch_id,)
            found = conn.execute(sql, params).fetchall()
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
            conn.executemany(
                "UPDATE items SET gold_label = ?, gold_version = ?, gold_checked_by = ?, gold_checked_at = ? WHERE id = ?",
                [(new_label, version, expert, now, item_id) for (item_id,) in ids],
            )
            pending = [
                row for (item_id,) in ids for row in conn.execute(
                    """SELECT id, label FROM assignments WHERE item_id = ? AND status = 'answered'
                       AND gold_correct IS NULL AND guideline_version = ?""",
                    (item_id, version),
                )
            ]
            conn.executemany(
                "UPDATE assignments SET gold_correct = ? WHERE id = ?",
                [(int(is_correct(answer, new_label, self.gold_policy)), aid) for aid, answer in pending],
            )
        return {"batches": batches, "pair_id": pair_id, "old_label": ", ".join(sorted(old_labels)), "label": new_label,
                "version": version, "changed": old_labels != {new_label}, "answers_scored": len(pending)}

    # --- reading answers back ---------------------------------------------------------------

    def annotations(self, batch_id: str) -> pd.DataFrame:
        """Every answer and skip of a batch, as the HUMAN_ANNOTATIONS table (without batch_id).

        Gold answers are included with is_gold True. `flagged` is the annotator's flag state now:
        a flagged annotator's labels are kept and marked, and reliability and final labels leave
        them out. Skips have a null label.
        """
        import pandas as pd

        from prefpipe.schemas import HUMAN_ANNOTATIONS, conform

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
        WHERE a.batch_id = ? AND a.status IN ('answered', 'skipped')
        ORDER BY a.answered_at, a.id
        """
        with self._read() as conn:
            return conn.execute(sql, (batch_id,)).fetchall()


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


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an older prefpipe up to SCHEMA_VERSION in place (nothing is lost).

    Version 1 had no gold key versions: each key gets its batch's guideline version (what it was
    loaded under) and answers already scored keep their score."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
    for name, kind in (("gold_version", "TEXT"), ("gold_checked_by", "TEXT"), ("gold_checked_at", "REAL")):
        if name not in columns:
            conn.execute(f"ALTER TABLE items ADD COLUMN {name} {kind}")
    conn.execute(
        """UPDATE items SET gold_version = (SELECT guideline_version FROM batches b WHERE b.batch_id = items.batch_id)
           WHERE queue = 'gold' AND gold_version IS NULL"""
    )


def _load_task(conn: sqlite3.Connection, assignment_id: int) -> Task:
    task_id, swapped, version, prompt, a, b, rubric, scale = conn.execute(
        """SELECT a.task_id, a.swapped, a.guideline_version, i.prompt, i.response_a, i.response_b,
                  b.rubric, b.dimension_scale
           FROM assignments a JOIN items i ON i.id = a.item_id JOIN batches b ON b.batch_id = a.batch_id
           WHERE a.id = ?""",
        (assignment_id,),
    ).fetchone()
    lo, hi = json.loads(scale)
    shown = [{**dim, "scale": [lo, hi]} for dim in json.loads(rubric)]
    left, right = (b, a) if swapped else (a, b)
    return Task(task_id, prompt, left, right, shown, version)


def _own_open_task(conn: sqlite3.Connection, annotator: Annotator, task_id: str) -> tuple:
    """(assignment id, status, swapped, batch id, gold label, gold key version, task version) of the
    annotator's unanswered task."""
    row = conn.execute(
        """SELECT a.id, a.status, a.swapped, a.batch_id, i.gold_label, i.gold_version, a.guideline_version, a.annotator_id
           FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.task_id = ?""",
        (task_id,),
    ).fetchone()
    if row is None or row[7] != annotator.id:
        raise TaskNotFound(f"task {task_id!r}: no such task for {annotator.name!r}")
    if row[1] in ("answered", "skipped"):
        raise AlreadyAnswered(f"task {task_id!r}: already {row[1]}; the first answer stands")
    return row[:7]


def _batch_rubric(conn: sqlite3.Connection, batch_id: str) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    rubric, scale = conn.execute("SELECT rubric, dimension_scale FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    lo, hi = json.loads(scale)
    return json.loads(rubric), (int(lo), int(hi))


def _check_rubric(rubric: Any) -> list[dict[str, Any]]:
    if not isinstance(rubric, list) or not rubric:
        raise FieldError("rubric", "must be a non-empty list of {'name', 'weight', 'description'}")
    out = []
    for i, dim in enumerate(rubric):
        if not isinstance(dim, dict) or not isinstance(dim.get("name"), str) or not dim["name"]:
            raise FieldError(f"rubric[{i}].name", "every rubric dimension needs a name")
        out.append({"name": dim["name"], "weight": dim.get("weight"), "description": dim.get("description", "")})
    return out


_TEXT_COLUMNS = ("pair_id", "prompt", "response_a", "response_b")


def _check_frame(df: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FieldError(what, f"missing column(s) {', '.join(missing)}")
    for col in _TEXT_COLUMNS:
        bad = ~df[col].map(lambda v: isinstance(v, str))
        if bad.any():
            where = df.index[bad][0]
            raise FieldError(f"{what}.{col}", f"row {where}: {df[col][where]!r} is not text")
    empty_ids = df["pair_id"].map(str.strip).eq("")
    if empty_ids.any():
        raise FieldError(f"{what}.pair_id", f"row {df.index[empty_ids][0]}: empty pair_id")


def _prepare_tasks(tasks: pd.DataFrame, per_item: int, expert_per_item: int) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    _check_frame(tasks, (*_TEXT_COLUMNS, "route", "priority"), "tasks")
    df = tasks.reset_index(drop=True)
    queue = df["route"].map(asg.ROUTE_TO_QUEUE)
    if queue.isna().any():
        i = int(np.flatnonzero(queue.isna())[0])
        raise FieldError(
            "tasks.route",
            f"pair {df['pair_id'][i]!r}: {df['route'][i]!r} is not one of {', '.join(asg.ROUTE_TO_QUEUE)}",
        )
    priority = pd.to_numeric(df["priority"], errors="coerce")
    if priority.isna().any() or not np.isfinite(priority.to_numpy(dtype=float)).all():
        i = int(np.flatnonzero(~np.isfinite(priority.to_numpy(dtype=float)))[0])
        raise FieldError("tasks.priority", f"pair {df['pair_id'][i]!r}: {df['priority'][i]!r} is not a number")
    default_wanted = np.where(queue.eq(asg.EXPERT_QUEUE), expert_per_item, per_item)
    if "labels_wanted" in df.columns:
        wanted = pd.to_numeric(df["labels_wanted"], errors="coerce").to_numpy(dtype=float)
        wanted = np.where(np.isnan(wanted), default_wanted, wanted)
    else:
        wanted = default_wanted.astype(float)
    if (wanted < 1).any() or (wanted != np.round(wanted)).any():
        i = int(np.flatnonzero((wanted < 1) | (wanted != np.round(wanted)))[0])
        raise FieldError("tasks.labels_wanted", f"pair {df['pair_id'][i]!r}: {wanted[i]!r} must be a whole number >= 1")
    out = pd.DataFrame(
        {
            "pair_id": df["pair_id"],
            "queue": queue,
            "route": df["route"],
            "prompt": df["prompt"],
            "response_a": df["response_a"],
            "response_b": df["response_b"],
            "priority": priority.astype(float),
            "labels_wanted": wanted.astype(int),
            "gold_label": None,
        }
    )
    return _with_keys(out, "tasks")


def _prepare_gold(gold: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    _check_frame(gold, (*_TEXT_COLUMNS, "label"), "gold")
    df = gold.reset_index(drop=True)
    bad = ~df["label"].map(lambda v: isinstance(v, str) and v in CODE)
    if bad.any():
        i = int(df.index[bad][0])
        raise FieldError("gold.label", f"pair {df['pair_id'][i]!r}: {df['label'][i]!r} is not on the scale {', '.join(SCALE)}")
    out = pd.DataFrame(
        {
            "pair_id": df["pair_id"],
            "queue": asg.GOLD_QUEUE,
            "route": "gold",
            "prompt": df["prompt"],
            "response_a": df["response_a"],
            "response_b": df["response_b"],
            "priority": 0.0,
            "labels_wanted": 0,
            "gold_label": df["label"],
        }
    )
    return _with_keys(out, "gold")


def _with_keys(df: pd.DataFrame, what: str) -> pd.DataFrame:
    dup = df.duplicated(["pair_id", "queue"])
    if dup.any():
        raise FieldError(f"{what}.pair_id", f"{df['pair_id'][dup].iloc[0]!r} appears more than once")
    df["content_key"] = [content_key(p, a, b) for p, a, b in zip(df["prompt"], df["response_a"], df["response_b"])]
    return df
