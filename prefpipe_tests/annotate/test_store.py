"""The store, on SQLite and on PostgreSQL (every test runs on both): the queue, assignment rules,
hidden gold, flagging, and reading answers back."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pandas as pd
import pytest
import sqlalchemy as sa

from prefpipe.core import settings
from prefpipe.annotate.errors import AlreadyAnswered, AnnotatorError, AnnotatorPaused, FieldError, TaskNotFound
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.store import SCHEMA_VERSION, AnnotationStore
from prefpipe.core.labels import SWAP
from prefpipe.core.schemas import HUMAN_ANNOTATIONS
from prefpipe_tests.annotate.conftest import BACKENDS, RUBRIC, VERSION, enqueue, gold_pairs, pairs, rows, scalar


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def annotator(store: AnnotationStore, name: str, role: str = "annotator"):
    return store.authenticate(store.add_annotator(name, role))


def honest(task) -> str:
    """The label for "the pair's own A is better" in the order this task was shown."""
    return "A>B" if task.response_a.endswith("side a") else "B>A"


def label_all(store: AnnotationStore, who, limit: int = 1000) -> list:
    """Answer every task `who` is served, honestly (gold pairs say A>B); returns the tasks."""
    tasks = []
    for _ in range(limit):
        task = store.next_task(who)
        if task is None:
            return tasks
        store.answer(who, task.task_id, honest(task))
        tasks.append(task)
    raise AssertionError("queue never ran dry")


def test_store_lives_in_the_data_folder_in_wal_mode(store, data_dir, backend):
    if backend == "postgresql":
        assert store.path is None and store.display.startswith("postgresql://prefpipe@127.0.0.1:")
        assert scalar(store, "SELECT count(*) FROM items") == 0
        return
    assert store.path == settings.annotation_store_path() == data_dir / "annotations.sqlite3"
    assert scalar(store, "PRAGMA journal_mode") == "wal"


def test_enqueue_is_idempotent_and_never_loses_answers(store):
    first = enqueue(store, "b1", pairs(4), gold=gold_pairs(2))
    assert first == {"inserted": 4, "updated": 0, "unchanged": 0, "text_kept": 0, "gold_inserted": 2, "gold_updated": 0}
    alice = annotator(store, "alice")
    while True:  # until one real pair is answered (a gold slot may come first: its place is secret)
        task = store.next_task(alice)
        store.answer(alice, task.task_id, "A>B")
        if task.prompt.startswith("Prompt p"):
            break
    n_answers = len(store.annotations("b1"))

    again = enqueue(store, "b1", pairs(4), gold=gold_pairs(2))
    assert again["inserted"] == again["gold_inserted"] == again["updated"] == 0
    assert again["unchanged"] == 6
    assert scalar(store, "SELECT count(*) FROM items") == 6
    assert len(store.annotations("b1")) == n_answers

    # A nightly rerun with a new priority and a changed text: the served pair keeps the text its
    # answer was given on; an unserved pair takes the new text.
    served_pair = store.annotations("b1").query("~is_gold")["pair_id"].iloc[0]
    changed = pairs(4, priority=5.0)
    changed["response_a"] = changed["response_a"] + " (regenerated)"
    counts = enqueue(store, "b1", changed)
    assert counts["updated"] == 4 and counts["text_kept"] == 1
    texts = dict(rows(store, "SELECT pair_id, response_a FROM items WHERE queue = 'human'"))
    assert not texts[served_pair].endswith("(regenerated)")
    assert sum(t.endswith("(regenerated)") for t in texts.values()) == 3
    assert len(store.annotations("b1")) == n_answers
    relabelled = gold_pairs(2)
    relabelled.loc[0, "label"] = "B>A"
    assert enqueue(store, "b1", changed, gold=relabelled)["gold_updated"] == 1


def test_bad_input_names_the_field_and_writes_nothing(store):
    bad_route = pairs(3)
    bad_route.loc[1, "route"] = "accepted"
    with pytest.raises(FieldError, match=r"tasks.route.*'p1'.*accepted"):
        enqueue(store, "b1", bad_route)
    missing = pairs(2).drop(columns=["priority"])
    with pytest.raises(FieldError, match="missing column.*priority"):
        enqueue(store, "b1", missing)
    null_text = pairs(2)
    null_text.loc[0, "response_b"] = None
    with pytest.raises(FieldError, match="tasks.response_b"):
        enqueue(store, "b1", null_text)
    bad_gold = gold_pairs(2)
    bad_gold.loc[1, "label"] = "A>>>B"
    with pytest.raises(FieldError, match="gold.label.*'g1'"):
        enqueue(store, "b1", pairs(2), gold=bad_gold)
    dup = pd.concat([pairs(2), pairs(1)], ignore_index=True)
    with pytest.raises(FieldError, match="'p0' appears more than once"):
        enqueue(store, "b1", dup)
    assert scalar(store, "SELECT count(*) FROM items") == 0
    assert scalar(store, "SELECT count(*) FROM batches") == 0


def test_each_item_gets_per_item_distinct_annotators(store):
    enqueue(store, "b1", pairs(1), per_item=3)
    people = [annotator(store, f"a{i}") for i in range(4)]
    served = [store.next_task(p) for p in people]
    assert all(t is not None for t in served[:3]) and served[3] is None
    for p, t in zip(people, served[:3]):
        store.answer(p, t.task_id, "A=B")
    assert store.next_task(people[3]) is None
    frame = store.annotations("b1")
    assert len(frame) == 3 and frame["annotator_id"].nunique() == 3


def test_an_annotator_never_gets_the_same_pair_twice_in_any_batch_or_order(store):
    enqueue(store, "b1", pairs(2), per_item=5)
    swapped_copy = pairs(2)
    swapped_copy[["response_a", "response_b"]] = swapped_copy[["response_b", "response_a"]].to_numpy()
    swapped_copy["pair_id"] = ["x0", "x1"]
    enqueue(store, "b2", swapped_copy, per_item=5)
    alice = annotator(store, "alice")
    tasks = label_all(store, alice)
    assert len(tasks) == 2
    with pytest.raises(sa.exc.IntegrityError):  # and the database itself refuses a repeat
        rows(store,
             "INSERT INTO assignments (task_id, annotator_id, item_id, content_key, batch_id, role, swapped, "
             "guideline_version, served_at) SELECT 'dup', annotator_id, item_id, content_key, batch_id, role, 0, "
             "'v', 0 FROM assignments LIMIT 1 RETURNING id")


def test_experts_get_the_expert_queue_first_and_others_never_do(store):
    tasks = pd.concat([pairs(2, "h"), pairs(2, "e", route="expert")], ignore_index=True)
    enqueue(store, "b1", tasks, per_item=3)
    seen = [t.prompt for t in label_all(store, annotator(store, "ann"))]
    assert sorted(seen) == ["Prompt h0", "Prompt h1"]
    expert = annotator(store, "expert", "expert")
    rest = [t.prompt for t in label_all(store, expert)]
    assert sorted(rest[:2]) == ["Prompt e0", "Prompt e1"] and sorted(rest[2:]) == ["Prompt h0", "Prompt h1"]
    frame = store.annotations("b1")
    assert set(frame.loc[frame["annotator_id"] == "expert", "role"]) == {"expert"}
    # one expert label is wanted by default on the expert route
    assert store.next_task(annotator(store, "expert2", "expert")).prompt.startswith("Prompt h")


def test_admins_do_not_label(store):
    enqueue(store, "b1", pairs(1))
    with pytest.raises(AnnotatorError, match="do not label"):
        store.next_task(annotator(store, "root", "admin"))


def test_gold_is_one_task_in_ten_at_varying_positions_and_only_beside_real_work(store):
    enqueue(store, "b1", pairs(200), per_item=1, gold=gold_pairs(40))
    alice = annotator(store, "alice")
    tasks = label_all(store, alice)
    gold_prompts = {f"Prompt g{i}" for i in range(40)}
    is_gold = [t.prompt in gold_prompts for t in tasks]
    # 200 real tasks plus one gold in each block of ten served; the queue ends on a real task
    assert sum(not g for g in is_gold) == 200 and not is_gold[-1]
    blocks = [is_gold[i : i + 10] for i in range(0, 220, 10)]
    assert all(sum(b) == 1 for b in blocks)
    positions = {b.index(True) for b in blocks}
    assert len(positions) >= 4, positions
    frame = store.annotations("b1")
    assert frame["is_gold"].sum() == sum(is_gold) in (22, 23)
    assert set(frame.loc[frame["is_gold"], "gold_label"]) == {"A>B"}


def test_gold_answers_count_for_the_batch_being_worked_on(store):
    enqueue(store, "pool", pairs(0), per_item=1, gold=gold_pairs(5), version="gold-version", gold_scope="global")
    enqueue(store, "b1", pairs(30), per_item=1, version="batch-version")
    label_all(store, annotator(store, "bob"))
    frame = store.annotations("b1")
    gold = frame[frame["is_gold"]]
    assert len(gold) in (3, 4)  # one per ten served while real work remains
    assert set(gold["guideline_version"]) == {"batch-version"}  # what the annotator was shown
    assert store.annotations("pool").empty


def flag_store(store_at, clock) -> AnnotationStore:
    """Every slot is a gold slot, so gold behaviour is exact."""
    return store_at("flag", gold_policy=GoldPolicy(rate=1.0), clock=clock)


def test_flagged_at_once_on_the_fifth_bad_gold_answer_and_paused(store_at, clock):
    with flag_store(store_at, clock) as store:
        enqueue(store, "b1", pairs(20), per_item=1, gold=gold_pairs(10, label="A>>B"))
        carl = annotator(store, "carl")
        for i in range(5):
            task = store.next_task(carl)
            store.answer(carl, task.task_id, SWAP[honest(task)])  # always wrong
            flagged = store.list_annotators()[0]["flagged"]
            assert flagged == (i == 4)
        with pytest.raises(AnnotatorPaused):
            store.next_task(carl)
        row = store.list_annotators()[0]
        assert row["gold_answers"] == 5 and row["gold_correct"] == 0 and row["gold_accuracy"] == 0
        assert "gold accuracy 0%" in row["flag_reason"] and "under 60%" in row["flag_reason"]
        assert store.annotations("b1")["flagged"].all()  # kept, and marked

        store.unflag("carl")
        assert store.next_task(carl) is not None
        assert not store.annotations("b1")["flagged"].any()


def test_a_careful_annotator_who_splits_strength_is_not_flagged(store_at, clock):
    with flag_store(store_at, clock) as store:
        enqueue(store, "b1", pairs(20), per_item=1, gold=gold_pairs(8, label="A>>B"))
        dana = annotator(store, "dana")
        for _ in range(8):
            task = store.next_task(dana)
            store.answer(dana, task.task_id, honest(task))  # gold says A>>B: same direction, weaker
        assert not store.list_annotators()[0]["flagged"]
        assert store.list_annotators()[0]["gold_accuracy"] == 1.0


def test_labels_and_scores_are_mapped_back_to_the_pairs_order(store):
    enqueue(store, "b1", pairs(40), per_item=1)
    eve = annotator(store, "eve")
    shown = {}
    for _ in range(40):
        task = store.next_task(eve)
        store.answer(eve, task.task_id, "A>>B", {"helpfulness": {"A": 5, "B": 1}})
        shown[task.prompt.split()[-1]] = task.response_a.endswith("side a")
    frame = store.annotations("b1").set_index("pair_id")
    assert 5 < sum(shown.values()) < 35  # both orders were used
    for pair_id, own_order in shown.items():
        assert frame.loc[pair_id, "label"] == ("A>>B" if own_order else SWAP["A>>B"])
        winner = "A" if own_order else "B"
        assert json.loads(frame.loc[pair_id, "dimensions"])["helpfulness"][winner] == 5


def test_answer_rules(store):
    enqueue(store, "b1", pairs(3), per_item=2)
    fay, gus = annotator(store, "fay"), annotator(store, "gus")
    task = store.next_task(fay)
    with pytest.raises(TaskNotFound):
        store.answer(gus, task.task_id, "A>B")
    with pytest.raises(TaskNotFound):
        store.answer(fay, "no-such-task", "A>B")
    with pytest.raises(FieldError) as err:
        store.answer(fay, task.task_id, "A>C")
    assert err.value.field == "label"
    with pytest.raises(FieldError) as err:
        store.answer(fay, task.task_id, "A>B", {"helpfulness": {"A": 9}})
    assert err.value.field == "dimensions.helpfulness.A"
    with pytest.raises(FieldError) as err:
        store.answer(fay, task.task_id, "A>B", {"tone": {"A": 3}})
    assert err.value.field == "dimensions.tone"
    store.answer(fay, task.task_id, "B>A")
    with pytest.raises(AlreadyAnswered):
        store.answer(fay, task.task_id, "A>B")
    with pytest.raises(AlreadyAnswered):
        store.skip(fay, task.task_id, "changed my mind")
    frame = store.annotations("b1")
    assert len(frame) == 1 and frame["label"].isin(["B>A", "A>B"]).all()
    stored = rows(store, "SELECT label_shown FROM assignments WHERE task_id = :task", task=task.task_id)[0]
    assert stored == ("B>A",)  # the first answer stands


def test_time_on_task_is_the_servers_and_the_version_shown_is_kept(store, clock):
    enqueue(store, "b1", pairs(2), per_item=1)
    hal = annotator(store, "hal")
    task = store.next_task(hal)
    clock.advance(7.25)
    enqueue(store, "b1", pairs(2), per_item=1, version="v2-test")  # guidelines change meanwhile
    store.answer(hal, task.task_id, "A=B")
    later = store.next_task(hal)
    clock.advance(2.0)
    store.answer(hal, later.task_id, "A=B")
    frame = store.annotations("b1")
    assert frame["duration_s"].tolist() == [7.25, 2.0]
    assert frame["guideline_version"].tolist() == [VERSION, "v2-test"]
    assert task.guideline_version == VERSION and later.guideline_version == "v2-test"
    assert frame["created_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").all()


def test_skip_returns_the_item_to_others_but_never_to_the_skipper(store):
    enqueue(store, "b1", pairs(1), per_item=1)
    ivy, jon = annotator(store, "ivy"), annotator(store, "jon")
    task = store.next_task(ivy)
    assert store.next_task(jon) is None  # leased to ivy
    with pytest.raises(FieldError):
        store.skip(ivy, task.task_id, "   ")
    receipt = store.skip(ivy, task.task_id, "outside my expertise")
    assert receipt.skipped == 1
    assert store.next_task(ivy) is None
    assert store.next_task(jon) is not None
    frame = store.annotations("b1")
    assert len(frame) == 1 and frame["label"].isna().all()


def test_an_abandoned_lease_expires_and_a_late_answer_is_still_kept(store_at, clock):
    with store_at(gold_policy=GoldPolicy(), clock=clock, lease_s=600) as store:
        enqueue(store, "b1", pairs(1), per_item=1)
        kim, lea = annotator(store, "kim"), annotator(store, "lea")
        late = store.next_task(kim)
        assert store.next_task(lea) is None
        clock.advance(601)
        fresh = store.next_task(lea)
        assert fresh is not None and fresh.prompt == late.prompt
        store.answer(lea, fresh.task_id, "A>B")
        store.answer(kim, late.task_id, "A>B")  # nothing submitted is lost
        assert sorted(store.annotations("b1")["annotator_id"]) == ["kim", "lea"]


def test_annotations_frame_has_the_warehouse_columns(store):
    enqueue(store, "b1", pairs(12), per_item=1, gold=gold_pairs(3))
    label_all(store, annotator(store, "max"))
    frame = store.annotations("b1")
    assert list(frame.columns) == list(HUMAN_ANNOTATIONS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == HUMAN_ANNOTATIONS
    assert set(frame["source"]) == {"app"} and set(frame["role"]) == {"annotator"}
    assert frame["is_gold"].any() and frame.loc[~frame["is_gold"], "gold_label"].isna().all()
    assert list(store.annotations("no-such-batch").columns) == list(HUMAN_ANNOTATIONS)


def test_export_writes_every_annotation_as_jsonl(store, tmp_path):
    enqueue(store, "b1", pairs(3), per_item=1)
    ned = annotator(store, "ned")
    t1 = store.next_task(ned)
    store.answer(ned, t1.task_id, "A>B", {"correctness": {"A": 4, "B": 2}})
    t2 = store.next_task(ned)
    store.skip(ned, t2.task_id, "prompt unclear")
    out = tmp_path / "out" / "b1.jsonl"
    assert store.export_jsonl("b1", out) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["answered", "skipped"]
    assert rows[0]["annotator_id"] == "ned" and rows[0]["label"] in ("A>B", "B>A")
    assert rows[0]["shown_order"] in ("AB", "BA") and rows[0]["dimensions"]["correctness"]
    assert rows[1]["label"] is None and rows[1]["skip_reason"] == "prompt unclear"
    assert {"duration_s", "served_at", "answered_at", "is_gold", "flagged", "guideline_version"} <= rows[0].keys()


def test_annotator_management(store):
    token = store.add_annotator("olga", "expert")
    assert token.startswith("pp_") and len(token) > 40
    stored = scalar(store, "SELECT token_hash FROM annotators WHERE name = 'olga'")
    assert token not in stored and len(stored) == 64
    with pytest.raises(AnnotatorError, match="already exists"):
        store.add_annotator("olga")
    with pytest.raises(AnnotatorError, match="name"):
        store.add_annotator("bad name")
    with pytest.raises(AnnotatorError, match="role"):
        store.add_annotator("pia", "boss")
    assert store.authenticate(token).role == "expert"
    store.disable("olga")
    assert store.authenticate(token) is None
    with pytest.raises(AnnotatorError, match="no annotator"):
        store.disable("nobody")
    assert store.list_annotators()[0]["disabled"] is True


def test_two_processes_worth_of_writers_share_the_file(store):
    """The app's store and an asset's store on the same file (database), writing at once: nothing fails."""
    enqueue(store, "b1", pairs(60), per_item=1)
    people = [annotator(store, f"w{i}") for i in range(3)]
    other = AnnotationStore(store.location)
    errors: list[BaseException] = []
    start = threading.Barrier(4)  # every writer starts at once, so no labeller finds the queue empty

    def labeller(who) -> None:
        try:
            start.wait(timeout=30)
            label_all(store, who)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def nightly() -> None:
        try:
            start.wait(timeout=30)
            for i in range(10):
                other.enqueue(f"n{i}", pairs(20, f"n{i}-"), per_item=1, guideline_version="v", rubric=RUBRIC)
                other.annotations("b1")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=labeller, args=(p,)) for p in people] + [threading.Thread(target=nightly)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    other.close()
    assert not errors
    frame = store.annotations("b1")
    assert len(frame) == 60 and frame["pair_id"].is_unique  # b1 fully labelled, each pair once
    assert len(Counter(frame["annotator_id"])) == 3
    assert store.batch_status("n9")["items"] == 20


def test_group_commit_isolates_a_failing_operation(store):
    enqueue(store, "b1", pairs(2), per_item=1)
    quin = annotator(store, "quin")
    task = store.next_task(quin)
    with store.group():
        store.answer(quin, task.task_id, "A>B")
        with pytest.raises(AlreadyAnswered):
            store.answer(quin, task.task_id, "B>A")
        with pytest.raises(FieldError):
            store.answer(quin, task.task_id, "nope")
    frame = store.annotations("b1")
    assert len(frame) == 1


# --- gold keys under a guideline change (docs/operations.md, gold re-check policy) ----------------


def test_gold_written_under_older_guidelines_flags_no_one_until_an_expert_rechecks_it(store_at, clock):
    """After a guideline change the old key is not evidence: five 'wrong' answers to it pause no
    one and count nowhere; the expert's confirmation scores them for the record, and from then on
    the key counts again and flags as it should."""
    with flag_store(store_at, clock) as store:
        enqueue(store, "new", pairs(20), per_item=1, gold=gold_pairs(12, label="A>>B"), version="v1")
        # the guidelines change and the batch is rerun: the same gold file again is not a re-check
        enqueue(store, "new", pairs(20), per_item=1, gold=gold_pairs(12, label="A>>B"), version="v2")
        assert store.gold_items("v2")["stale"].all() and set(store.gold_items("v2")["gold_version"]) == {"v1"}
        carl = annotator(store, "carl")
        answered = []
        for _ in range(6):
            task = store.next_task(carl)
            store.answer(carl, task.task_id, SWAP[honest(task)])  # disagrees with the old key every time
            answered.append(task)
        row = store.list_annotators()[0]
        assert not row["flagged"] and row["gold_answers"] == 0
        frame = store.annotations("new")
        gold_rows = frame[frame["is_gold"]]
        assert len(gold_rows) == 6 and gold_rows["gold_label"].isna().all()  # no key to score against yet
        listed = store.gold_items("v2")
        assert listed["answers_awaiting_recheck"].sum() == 6

        boss = annotator(store, "boss", "expert")
        seen = sorted(store.annotations("new").query("is_gold")["pair_id"])
        result = store.recheck_gold(seen[0], version="v2", expert=boss.name)  # confirm: the key stands
        assert result["answers_scored"] == 1 and not result["changed"]
        result = store.recheck_gold(seen[1], version="v2", expert=boss.name, label="B>A")  # correct it
        assert result["changed"] and result["old_label"] == "A>>B" and result["answers_scored"] == 1
        listed = store.gold_items("v2").set_index("pair_id")
        assert not listed.loc[seen[0], "stale"] and listed.loc[seen[0], "checked_by"] == "boss"
        assert listed.loc[seen[1], "gold_label"] == "B>A" and listed.loc[seen[1], "gold_version"] == "v2"
        carl_row = {r["name"]: r for r in store.list_annotators()}["carl"]
        assert carl_row["gold_answers"] == 2 and carl_row["gold_correct"] == 1 and not carl_row["flagged"]  # right by the corrected key
        frame = store.annotations("new").query("is_gold").set_index("pair_id")
        assert frame.loc[seen[0], "gold_label"] == "A>>B" and frame.loc[seen[1], "gold_label"] == "B>A"

        # re-check the rest under v2: from now on gold counts and a careless annotator is flagged
        for pair_id in store.gold_items("v2").query("stale")["pair_id"]:
            store.recheck_gold(pair_id, version="v2", expert=boss.name)
        dora = annotator(store, "dora")
        for i in range(5):
            task = store.next_task(dora)
            store.answer(dora, task.task_id, SWAP[honest(task)])
        assert {r["name"]: r["flagged"] for r in store.list_annotators()}["dora"]


def test_current_gold_is_served_before_gold_awaiting_recheck(store_at, clock):
    with flag_store(store_at, clock) as store:
        enqueue(store, "new", pairs(20), per_item=1, gold=gold_pairs(6, "s"), version="v1")
        enqueue(store, "new", pairs(20), per_item=1, gold=pd.concat([gold_pairs(6, "s"), gold_pairs(3, "c")]), version="v2")
        erin = annotator(store, "erin")
        served = []
        for _ in range(5):
            task = store.next_task(erin)
            store.answer(erin, task.task_id, honest(task))
            served.append(task.prompt.split()[-1][0])
        assert served[:3] == ["c", "c", "c"] and served[3:] == ["s", "s"]  # then stale gold keeps the rate hidden


def test_reloading_a_changed_gold_label_is_a_new_key_and_recheck_rules(store):
    enqueue(store, "b1", pairs(2), gold=gold_pairs(2, label="A>B"), version="v1")
    changed = gold_pairs(2, label="A>B")
    changed.loc[1, "label"] = "A=B"
    counts = enqueue(store, "b1", pairs(2), gold=changed, version="v2")
    assert counts["gold_updated"] == 1
    listed = store.gold_items("v2").set_index("pair_id")
    assert listed.loc["g0", "stale"] and listed.loc["g0", "gold_version"] == "v1"
    assert not listed.loc["g1", "stale"] and listed.loc["g1", "gold_label"] == "A=B"
    ann = annotator(store, "ann")
    with pytest.raises(AnnotatorError, match="not an active expert"):
        store.recheck_gold("g0", version="v2", expert="ann")
    with pytest.raises(AnnotatorError, match="not an active expert"):
        store.recheck_gold("g0", version="v2", expert="nobody")
    annotator(store, "exp", "expert")
    with pytest.raises(FieldError, match="not on the scale"):
        store.recheck_gold("g0", version="v2", expert="exp", label="A>>>B")
    with pytest.raises(FieldError, match="not a gold pair"):
        store.recheck_gold("p0", version="v2", expert="exp")
    enqueue(store, "b2", pairs(1, "x"), gold=gold_pairs(2, label="A>B"), version="v1")  # the same gold file again
    other_text = gold_pairs(1).assign(response_a="a different answer")
    enqueue(store, "b3", pairs(1, "y"), gold=other_text, version="v1")  # g0 with other text
    with pytest.raises(FieldError, match="different text by batches b1, b2, b3"):
        store.recheck_gold("g0", version="v2", expert="exp")
    assert store.recheck_gold("g0", version="v2", expert="exp", batch_id="b3")["batches"] == ["b3"]
    store.recheck_gold("g1", version="v2", expert="exp", batch_id="b2")  # g1: b1 says A=B (v2), b2 now A>B (v2)
    with pytest.raises(FieldError, match="different keys in batches b1, b2"):
        store.recheck_gold("g1", version="v2", expert="exp")  # a confirmation would not say which key holds
    both = store.recheck_gold("g1", version="v2", expert="exp", label="A=B")
    assert both["batches"] == ["b1", "b2"] and both["changed"] and both["old_label"] == "A=B, A>B"
    keys = store.gold_items("v2").query("pair_id == 'g1'")
    assert set(keys["gold_label"]) == {"A=B"} and not keys["stale"].any()
    assert ann is not None


def test_a_store_written_before_gold_versions_is_upgraded_in_place(data_dir, clock, backend):
    if backend == "postgresql":
        pytest.skip("version 1 stores were SQLite files only; PostgreSQL stores begin at version 3")
    path = data_dir / "old.sqlite3"
    with AnnotationStore(path, clock=clock) as store:
        enqueue(store, "b1", pairs(3), per_item=1, gold=gold_pairs(2), version="v1")
        who = annotator(store, "fred")
        label_all(store, who)
        before = len(store.annotations("b1"))
    import sqlite3

    conn = sqlite3.connect(path)  # make it look like a version-1 store
    for column in ("gold_version", "gold_checked_by", "gold_checked_at"):
        conn.execute(f"ALTER TABLE items DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with AnnotationStore(path, clock=clock) as store:
        assert set(store.gold_items("v1")["gold_version"]) == {"v1"} and not store.gold_items("v1")["stale"].any()
        assert len(store.annotations("b1")) == before
        assert bytes(scalar(store, "SELECT value FROM meta WHERE key = 'schema_version'")) == str(SCHEMA_VERSION).encode()
