"""The operational annotation store, shared by many writers: a SQLite file in WAL mode on one
machine, or a PostgreSQL database for a team (PREFPIPE_ANNOTATION_STORE, location.py).

The annotation app (one or many replicas), the `prefpipe` CLI and the Dagster assets all open the
same store. Every write is a short transaction: on SQLite `BEGIN IMMEDIATE` with a busy timeout,
so a second process waits its turn instead of failing, and `synchronous=FULL`, so a stored answer
survives a power cut; on PostgreSQL row locks taken in one order and `FOR UPDATE SKIP LOCKED` for
picking tasks (schema.py). Inside one process a lock serialises the store, so the app can hand
work to it from any thread.

Tables: `annotators` (token hashes and expiry, role, flag state), `sessions` (the page's sign-ins),
`batches` (guideline version and rubric shown with a batch's tasks), `items` (one row per pair and
queue: human, expert or gold, with its HTML rendered once when queued), and `assignments` (one row
per task served to an annotator, with the left/right order they saw, the server's timestamps and
their answer in the pair's own order). The file is private to its owner (0600).

Gold pairs are served only beside real tasks of the batch they were loaded for (`gold_scope`
"batch", the default), so one batch's annotators never see another batch's gold prompts; a pool
loaded with scope "global" is served beside any batch. A gold answer is reported with the batch
the annotator was working on when it was served (the batch of the real task it stood in for), so
each batch's annotations carry the gold evidence about the people who labelled it.

A gold answer key is part of the guidelines (docs/operations.md, gold re-check policy): each gold
item carries the guideline version its key was written or last confirmed under (`gold_version`),
and an answer is scored only against a key of the version shown with the task. Answers to a key
of another version are stored unscored: they flag no one and leave the batch's gold accuracy, until
an expert re-checks the key (`recheck_gold`, `prefpipe gold recheck`), which re-stamps it with the
current version and scores the answers given under that version (for the record and the reports;
the live flag counts only answers scored as they came in). Reloading a gold file with the same
label is not a re-check; a changed label is a new key under the batch's version.

The store is one class composed of one mixin per concern, each in its own module: `schema`
(opening, the lock and transactions; with `location` for the URL and engine, `tables` for the
tables and `migrations` for versioned upgrades), `annotators`,
`sessions` (signing in, expiry, sign-out, rotation), `queue` (enqueue, batch status) with
`validation` (the frames it is given), `serving` (next task, answer, skip, progress), `gold_keys`
(gold keys and re-check) and `readback` (annotations, export).
"""

from __future__ import annotations

from prefpipe.annotate.store.annotators import (
    LABELLING_ROLES,
    NAME_PATTERN,
    ROLES,
    Annotator,
    AnnotatorsMixin,
)
from prefpipe.annotate.store.gold_keys import GoldKeysMixin
from prefpipe.annotate.store.location import STORE_ENV, StoreConfigError, StoreLocation, configured_location, parse_location
from prefpipe.annotate.store.queue import QueueMixin
from prefpipe.annotate.store.readback import ReadbackMixin
from prefpipe.annotate.store.schema import SCHEMA_VERSION, TOKEN_TTL_S
from prefpipe.annotate.store.serving import SWEEP_EVERY_S, Receipt, ServingMixin, Task
from prefpipe.annotate.store.sessions import SESSION_TTL_S, SessionsMixin, SignedIn
from prefpipe.annotate.store.values import content_key, iso_utc

__all__ = [
    "LABELLING_ROLES",
    "NAME_PATTERN",
    "ROLES",
    "SCHEMA_VERSION",
    "SESSION_TTL_S",
    "STORE_ENV",
    "SWEEP_EVERY_S",
    "TOKEN_TTL_S",
    "AnnotationStore",
    "Annotator",
    "Receipt",
    "SignedIn",
    "StoreConfigError",
    "StoreLocation",
    "Task",
    "configured_location",
    "content_key",
    "iso_utc",
    "parse_location",
]


class AnnotationStore(AnnotatorsMixin, SessionsMixin, QueueMixin, ServingMixin, GoldKeysMixin, ReadbackMixin):
    """The shared store (SQLite or PostgreSQL). Cheap to open; open one per process (or per asset
    run) and reuse it."""
