"""A small store whose admin figures are known by construction: who answered, skipped, got gold
right or wrong, was flagged and how long each answer took (a clock moved by hand). Shared by the
store, API and page tests of the admin view.

Every task is gold first (GoldPolicy rate 1: each annotator meets both gold pairs of b1 before its
real tasks), and b1's pairs have priorities 3, 2, 1 so everyone takes p0, then p1, then p2:

- alice: gold right (10 s, 20 s), p0 (30 s), p1 (40 s), skips p2, then b2's q0 (50 s);
- bob:   gold wrong twice (8 s, 12 s): flagged (2 gold answers under 50%);
- dave:  gold right (6 s, 7 s), p0 (9 s), p1 (100 s): p0 and p1 now have their 2 labels;
- carol: gold right then wrong (3 s, 4 s), then is served p2 and leaves it open (in flight);
- root:  an admin, who only signs in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.store import AnnotationStore
from prefpipe.core.labels import SWAP
from prefpipe_tests.annotate.conftest import FakeClock, enqueue, gold_pairs, pairs

POLICY = GoldPolicy(rate=1.0, min_answers=2, min_accuracy=0.5)
"""The policy the store must be opened with for the scenario's numbers."""

BATCHES = [
    {"batch_id": "b1", "guideline_version": "v1-test", "items": 3, "labels_wanted": 6, "answered": 4, "skipped": 1,
     "in_flight": 1, "complete": 2, "waiting": 1, "gold_items": 2, "gold_answers": 8, "gold_correct": 5},
    {"batch_id": "b2", "guideline_version": "v1-test", "items": 1, "labels_wanted": 1, "answered": 1, "skipped": 0,
     "in_flight": 0, "complete": 1, "waiting": 0, "gold_items": 0, "gold_answers": 0, "gold_correct": 0},
]
"""queue_progress() of the scenario, but for each batch's updated_at."""

ANNOTATORS = {
    # name: (role, answered, skipped, gold answers, gold correct, flagged, median seconds on task)
    "alice": ("annotator", 5, 1, 2, 2, False, 30.0),
    "bob": ("annotator", 2, 0, 2, 0, True, 10.0),
    "carol": ("annotator", 2, 0, 2, 1, False, 3.5),
    "dave": ("annotator", 4, 0, 2, 2, False, 8.0),
    "root": ("admin", 0, 0, 0, 0, False, None),
}


@dataclass(frozen=True)
class Scenario:
    admin_token: str
    annotator_tokens: dict[str, str]
    last_seen: dict[str, float]
    """When each annotator last acted, by the scenario's clock."""


def _honest(task) -> str:
    return "A>B" if task.response_a.endswith("side a") else "B>A"


def build(store: AnnotationStore, clock: FakeClock) -> Scenario:
    """Play the scenario on an empty store opened with POLICY and `clock`."""
    tasks = pairs(3)
    tasks["priority"] = [3.0, 2.0, 1.0]
    enqueue(store, "b1", tasks, per_item=2, gold=gold_pairs(2))
    enqueue(store, "b2", pairs(1, prefix="q"), per_item=1)
    tokens = {name: store.add_annotator(name) for name in ("alice", "bob", "dave", "carol")}
    admin_token = store.add_annotator("root", "admin")
    last_seen: dict[str, float] = {}

    def work(name: str, steps: list[tuple[str, str, float]]) -> None:
        """Each step: the pair served (its prompt's id; g for either gold pair), what is done with
        it (right, wrong or skip) and the seconds it takes."""
        who = store.authenticate(tokens[name])
        for pair, action, seconds in steps:
            clock.advance(1.0)
            task = store.next_task(who)
            assert task is not None and task.prompt.startswith(f"Prompt {pair}"), (name, pair, task)
            clock.advance(seconds)
            if action == "skip":
                store.skip(who, task.task_id, "prompt unclear")
            else:
                store.answer(who, task.task_id, _honest(task) if action == "right" else SWAP[_honest(task)])
            last_seen[name] = clock.now

    work("alice", [("g", "right", 10), ("g", "right", 20), ("p0", "right", 30), ("p1", "right", 40), ("p2", "skip", 5),
                   ("q0", "right", 50)])
    work("bob", [("g", "wrong", 8), ("g", "wrong", 12)])
    work("dave", [("g", "right", 6), ("g", "right", 7), ("p0", "right", 9), ("p1", "right", 100)])
    work("carol", [("g", "right", 3), ("g", "wrong", 4)])
    clock.advance(1.0)
    assert store.next_task(store.authenticate(tokens["carol"])).prompt == "Prompt p2"  # left open: in flight
    last_seen["carol"] = clock.now
    clock.advance(60.0)
    store.open_session(store.sign_in(admin_token))
    last_seen["root"] = clock.now
    return Scenario(admin_token, tokens, last_seen)

