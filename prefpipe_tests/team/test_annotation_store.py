"""The annotation store on a real PostgreSQL server: two app processes over one store serving 50
annotators at once, the server restarted while they label, an unreachable server at start, and
`prefpipe store migrate` moving a SQLite store across with everything in it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest

from prefpipe.annotate.store import AnnotationStore
from prefpipe.bench.annotate_load import run_load
from prefpipe_tests.annotate.conftest import FakeClock, enqueue, gold_pairs, pairs
from prefpipe_tests.services import Postgres, free_port

pytestmark = pytest.mark.team


def fresh_store(postgres: Postgres) -> str:
    return postgres.url(postgres.create_database(f"store_{secrets.token_hex(4)}"))


def prefpipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefpipe.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_two_replicas_serve_fifty_annotators_over_one_postgresql_store(tmp_path, postgres):
    """Every request goes to either replica at random; each acknowledged label is stored once, no
    item gets more answers than its overlap, no honest annotator is flagged."""
    result = run_load(tmp_path / "data", annotators=50, labels_each=20, per_item=3, measure_floor=False,
                      store=fresh_store(postgres), replicas=2)
    print("\n" + result.report())
    assert result.problems == []
    assert sum(len(v) for v in result.latencies_ms.values()) == 2 * 50 * 20


def test_postgresql_restarted_while_the_app_serves_loses_no_acknowledged_answer(tmp_path, postgres):
    """The server goes down hard mid-load and comes back: requests meanwhile get a clean 503 (and
    are sent again, as the page does), the app recovers by itself, and every answer that was
    acknowledged is stored exactly once."""
    restarted: list[float] = []

    def crash_and_restart(sent: list) -> None:
        deadline = time.monotonic() + 60
        while len(sent) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        postgres.stop()
        time.sleep(2.0)
        postgres.start()
        restarted.append(time.monotonic())

    result = run_load(tmp_path / "data", annotators=10, labels_each=40, per_item=3, think_s=0.01, measure_floor=False,
                      store=fresh_store(postgres), replicas=2, during=crash_and_restart)
    print("\n" + result.report())
    assert restarted, "the fault never ran"
    assert result.retried > 0  # requests during the outage were refused cleanly, not hung or lost
    assert result.problems == []


def test_an_unreachable_server_at_start_is_one_line_naming_the_variable_and_the_address(data_dir):
    port = free_port()  # nothing listens there
    url = f"postgresql://prefpipe:s3cret-pw@127.0.0.1:{port}/prefpipe"
    for command in (["annotators", "list"], ["annotate", "--port", "0"]):
        done = prefpipe(*command, env={"PREFPIPE_ANNOTATION_STORE": url})
        assert done.returncode == 1, done.stderr
        lines = [line for line in done.stderr.splitlines() if not line.startswith("note:")]  # `annotate` notes missing guidelines
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith("error: PREFPIPE_ANNOTATION_STORE:") and f"postgresql://prefpipe@127.0.0.1:{port}/prefpipe" in lines[0]
        assert "s3cret-pw" not in done.stderr + done.stdout


def test_store_migrate_copies_a_sqlite_store_into_postgresql_with_everything_working(data_dir, postgres):
    clock = FakeClock()
    with AnnotationStore(clock=clock) as store:
        enqueue(store, "b1", pairs(6), per_item=2, gold=gold_pairs(3))
        ann_token, bob_token = store.add_annotator("ann"), store.add_annotator("bob", "expert")
        ann = store.authenticate(ann_token)
        for _ in range(4):
            task = store.next_task(ann)
            store.answer(ann, task.task_id, "A>B")
        open_task = store.next_task(ann)  # served, not answered: it must still be ann's after the move
        before = store.annotations("b1")
        gold_before = store.gold_items("v1-test")
    target = fresh_store(postgres)
    shown_target = target.replace(f":{postgres.password}@", "@")
    done = prefpipe("store", "migrate", "--to", target, env={"PREFPIPE_DATA_DIR": str(data_dir)})
    assert done.returncode == 0, done.stderr
    assert postgres.password not in done.stdout + done.stderr and shown_target in done.stdout
    assert "9 items" in done.stdout and "5 assignments" in done.stdout  # 6 pairs + 3 gold; 4 answered, 1 open

    with AnnotationStore(target, clock=clock) as moved:
        after = moved.annotations("b1")
        assert after.equals(before)
        assert moved.gold_items("v1-test").equals(gold_before)
        ann = moved.authenticate(ann_token)
        assert ann is not None and moved.authenticate(bob_token).role == "expert"
        assert moved.next_task(ann).task_id == open_task.task_id  # the same secret, the same open task
        moved.answer(ann, open_task.task_id, "B>A")
        moved.add_annotator("cy")  # new ids carry on after the copied ones
        assert [r["name"] for r in moved.list_annotators()] == ["ann", "bob", "cy"]
        assert len(moved.annotations("b1")) == len(before) + 1

    again = prefpipe("store", "migrate", "--to", target, env={"PREFPIPE_DATA_DIR": str(data_dir)})
    assert again.returncode == 1 and "already holds data" in again.stderr and postgres.password not in again.stderr
