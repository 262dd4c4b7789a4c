"""What colluders comparing notes could learn about gold, and what they cannot (issue item 6): each
annotator's own task order, gold kept to the batch it was loaded for, and a flag told late."""

from __future__ import annotations

import sqlite3

import httpx
import pandas as pd

from prefpipe.annotate.app import create_app
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import AnnotationStore
from prefpipe.core.labels import SWAP
from prefpipe_tests.annotate.conftest import auth, enqueue, gold_pairs, pairs


def order(store: AnnotationStore, who, limit: int = 1000) -> list[str]:
    """The prompts `who` is served, answering each at once (honestly: gold says A>B), until nothing is left."""
    seen = []
    for _ in range(limit):
        task = store.next_task(who)
        if task is None:
            return seen
        store.answer(who, task.task_id, "A>B" if task.response_a.endswith("side a") else "B>A")
        seen.append(task.prompt)
    raise AssertionError("queue never ran dry")


def test_each_annotator_has_their_own_order_within_a_priority_and_it_is_stable(store, data_dir):
    tasks = pd.concat([pairs(5, "hi", priority=2.0), pairs(40, "lo", priority=1.0)], ignore_index=True)
    enqueue(store, "b1", tasks, per_item=3)
    people = [store.authenticate(store.add_annotator(name)) for name in ("ann", "bob", "cy")]
    copy = data_dir / "copy.sqlite3"  # the same store (and secret) as it is now, to replay one annotator
    with sqlite3.connect(copy) as target, store.engine.connect() as conn:
        conn.connection.driver_connection.backup(target)
    orders = [order(store, who) for who in people]
    for seen in orders:
        assert sorted(seen[:5]) == sorted(f"Prompt hi{i}" for i in range(5))  # priority first, for everyone
        assert len(seen) == 45
    assert len({tuple(seen) for seen in orders}) == 3  # three orders
    assert len({tuple(seen[5:15]) for seen in orders}) == 3
    with AnnotationStore(copy) as replay:
        assert order(replay, people[1]) == orders[1]  # the same secret and state give the same order


def test_gold_loaded_for_one_batch_is_never_served_beside_another(data_dir, clock):
    with AnnotationStore(data_dir / "g.sqlite3", gold_policy=GoldPolicy(rate=0.5), clock=clock) as store:
        enqueue(store, "b1", pairs(0), per_item=1, gold=gold_pairs(10, "b1gold"))
        enqueue(store, "b2", pairs(20, "two"), per_item=1)
        seen = order(store, store.authenticate(store.add_annotator("only-b2")))
        assert sorted(seen) == sorted(f"Prompt two{i}" for i in range(20))  # no gold among them
        assert set(store.gold_items()["scope"]) == {"batch"}  # the default
        enqueue(store, "b1", pairs(20, "one"), per_item=1, gold=gold_pairs(10, "b1gold"))
        seen = order(store, store.authenticate(store.add_annotator("on-b1")))
        assert sum(p.startswith("Prompt b1gold") for p in seen) == 10  # beside its own batch's tasks it is served
        assert store.annotations("b1")["is_gold"].sum() == 10 and not store.annotations("b2")["is_gold"].any()


def test_gold_loaded_with_scope_global_is_served_beside_any_batch(data_dir, clock):
    with AnnotationStore(data_dir / "g.sqlite3", gold_policy=GoldPolicy(rate=0.5), clock=clock) as store:
        enqueue(store, "pool", pairs(0), gold=gold_pairs(10), gold_scope="global")
        enqueue(store, "b2", pairs(20, "two"), per_item=1)
        assert set(store.gold_items()["scope"]) == {"global"}
        order(store, store.authenticate(store.add_annotator("ann")))
        assert store.annotations("b2")["is_gold"].sum() == 10  # one in every two served, while gold lasts
        enqueue(store, "pool", pairs(0), gold=gold_pairs(10))  # loading it again without the option scopes it
        assert set(store.gold_items()["scope"]) == {"batch"}


def test_a_delayed_flag_is_told_n_answers_later_and_applies_from_the_flag_point(data_dir, clock):
    policy = GoldPolicy.from_thresholds({"gold_rate": 1.0, "gold_flag_delay_answers": 3})
    assert policy.flag_delay == 3
    with AnnotationStore(data_dir / "f.sqlite3", gold_policy=policy, clock=clock) as store, \
            ServerThread(create_app(store)) as url, httpx.Client(base_url=url) as http:
        enqueue(store, "b1", pairs(20), per_item=1, gold=gold_pairs(12))
        admin, token = store.add_annotator("root", "admin"), store.add_annotator("ann")
        shown = []
        for i in range(8):
            task = http.get("/api/tasks/next", headers=auth(token)).json()
            wrong = SWAP["A>B" if task["response_a"].endswith("side a") else "B>A"]
            assert http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json={"label": wrong}).status_code == 201
            shown.append(http.get("/api/me", headers=auth(token)).json()["flagged"])
            if i == 5:  # after the flag point (the fifth answer), before the annotator is told
                row = next(r for r in http.get("/api/admin/annotators", headers=auth(admin)).json() if r["name"] == "ann")
                assert row["flagged"] and not row["flag_shown"]
                frame = store.annotations("b1")
                assert len(frame) == 6 and frame["flagged"].all()  # nothing after the flag point counts as clean
        assert shown == [False] * 7 + [True]  # told three answers after the fifth wrong gold answer
        r = http.get("/api/tasks/next", headers=auth(token))
        assert r.status_code == 403 and r.json()["flagged"] is True
        assert len(store.annotations("b1")) == 8 and store.annotations("b1")["flagged"].all()


def test_without_a_delay_the_flag_is_told_at_once():
    assert GoldPolicy.from_thresholds({}).flag_delay == 0
