"""Loading a big batch (on SQLite and PostgreSQL): chunked inserts, texts told apart by content key
and response order on a rerun, HTML filled in for items stored without it, plain prose stored with
the mark in place of its HTML, and the same items whatever the frame's text dtype."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from prefpipe.annotate.render import PARAGRAPHS_MARK, safe_html, shown_html
from prefpipe.annotate.store import queue
from prefpipe_tests.annotate.conftest import BACKENDS, enqueue, gold_pairs, pairs, rows, scalar

ITEMS = """SELECT id, pair_id, queue, route, prompt, response_a, response_b, content_key, prompt_html, response_a_html,
                  response_b_html, priority, labels_wanted, gold_label, gold_scope, gold_version FROM items ORDER BY id"""


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def varied(n: int) -> pd.DataFrame:
    """Pairs with markdown, plain prose, shared prompts and a quote, in a mixed order of priority."""
    tasks = pairs(n)
    tasks["prompt"] = [f"Prompt {i % 4}" for i in range(n)]  # the same text in many rows
    tasks.loc[::3, "response_a"] = tasks.loc[::3, "response_a"] + ' says "**bold**"'
    tasks.loc[1::5, "response_b"] = "Line one\n\nLine two <b>"
    tasks.loc[2::7, "response_a"] = "Tab\there, a back\\slash, \\N and é"  # what COPY's text format escapes
    tasks["priority"] = [float((i * 7) % 5) for i in range(n)]
    return tasks


@pytest.mark.parametrize("text", ["object", "string[pyarrow]", "category"])
def test_a_batch_loads_in_chunks_with_ids_in_order_and_html_per_text(store_at, monkeypatch, text):
    monkeypatch.setattr(queue, "INSERT_CHUNK_ROWS", 4)
    tasks = varied(11).astype({c: text for c in ("pair_id", "prompt", "response_a", "response_b")})
    with store_at("chunked") as store:
        counts = enqueue(store, "b1", tasks, gold=gold_pairs(2).astype({"prompt": text}))
        assert counts["inserted"] == 11 and counts["gold_inserted"] == 2
        got = rows(store, ITEMS)
        if store.path is not None:  # the bigger page cache was for the load only
            assert scalar(store, "PRAGMA cache_size") == -2000
    assert [r[1] for r in got] == [f"p{i}" for i in range(11)] + ["g0", "g1"]  # incoming order: ids follow it
    for r in got:
        assert tuple(shown_html(t, stored) for t, stored in zip(r[4:7], r[8:11])) == (safe_html(r[4]), safe_html(r[5]), safe_html(r[6]))
    stored = {t: h for r in got for t, h in zip(r[4:7], r[8:11])}
    assert stored["Prompt 0"] == stored["Response p1 side a"] == PARAGRAPHS_MARK  # plain prose: its HTML is not stored
    assert stored["Line one\n\nLine two <b>"] == safe_html("Line one\n\nLine two <b>")  # markdown-it's, stored
    assert [r[13:16] for r in got[-2:]] == [("A>B", "batch", "v1-test")] * 2 and all(r[13:16] == (None, None, None) for r in got[:-2])


def test_the_same_items_whatever_the_text_dtype(store_at):
    stored = []
    for name, text in (("python", object), ("arrow", "string[pyarrow]")):
        with store_at(name) as store:
            enqueue(store, "b1", varied(9).astype({c: text for c in ("pair_id", "prompt", "response_a", "response_b")}), gold=gold_pairs(1))
            stored.append([r[:8] + r[8:11] + r[11:] for r in rows(store, ITEMS)])
    assert stored[0] == stored[1]


def test_swapped_responses_are_a_changed_text_though_the_content_key_is_the_same(store):
    enqueue(store, "b1", pairs(3))
    swapped = pairs(3)
    swapped.loc[1, ["response_a", "response_b"]] = swapped.loc[1, ["response_b", "response_a"]].to_numpy()
    counts = enqueue(store, "b1", swapped)
    assert (counts["updated"], counts["unchanged"], counts["text_kept"]) == (1, 2, 0)
    assert rows(store, "SELECT response_a, response_a_html FROM items WHERE pair_id = 'p1'") == [("Response p1 side b", PARAGRAPHS_MARK)]
    assert enqueue(store, "b1", swapped)["unchanged"] == 3


def test_items_stored_without_html_get_it_and_a_served_changed_one_keeps_its_text(store):
    enqueue(store, "b1", pairs(3), per_item=1)
    who = store.authenticate(store.add_annotator("ann"))
    served = store.next_task(who)
    with store.engine.begin() as conn:  # as a store written before HTML was kept
        conn.exec_driver_sql("UPDATE items SET prompt_html = NULL, response_a_html = NULL, response_b_html = NULL")
    changed = pairs(3)
    changed["response_a"] = changed["response_a"] + " **new**"
    counts = enqueue(store, "b1", changed, per_item=1)
    assert (counts["updated"], counts["text_kept"]) == (2, 1)
    assert scalar(store, "SELECT count(*) FROM items WHERE prompt_html IS NULL OR response_a_html IS NULL OR response_b_html IS NULL") == 0
    for prompt, a, b, prompt_html, a_html, b_html in rows(store, "SELECT prompt, response_a, response_b, prompt_html, response_a_html, "
                                                                  "response_b_html FROM items"):
        assert (shown_html(prompt, prompt_html), shown_html(a, a_html), shown_html(b, b_html)) == (safe_html(prompt), safe_html(a), safe_html(b))
    kept = rows(store, "SELECT response_a FROM items WHERE prompt = :p", p=served.prompt)
    assert kept == [("Response " + served.prompt.split()[-1] + " side a",)]  # the text its task was served with


def test_a_text_changed_by_another_process_between_the_two_looks_is_rendered_in_the_lock(store, monkeypatch):
    enqueue(store, "b1", pairs(3))

    class Raced(queue._Html):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)  # rendered what the first look asked for: nothing, all unchanged
            with store.engine.begin() as conn:  # meanwhile another process stores other text for p1
                conn.exec_driver_sql("UPDATE items SET response_a = 'other', content_key = 'other' WHERE pair_id = 'p1'")

    monkeypatch.setattr(queue, "_Html", Raced)
    counts = enqueue(store, "b1", pairs(3))
    assert (counts["updated"], counts["unchanged"]) == (1, 2)
    assert rows(store, "SELECT response_a, response_a_html FROM items WHERE pair_id = 'p1'") == [("Response p1 side a", PARAGRAPHS_MARK)]


def test_the_page_shows_markdown_it_html_whether_or_not_it_was_stored_and_a_copied_store_the_same(store_at, data_dir):
    """Plain prose is stored with the mark and shown as markdown-it renders it; so is what a store
    copied elsewhere (`prefpipe store migrate`) serves."""
    from prefpipe.annotate.store import AnnotationStore
    from prefpipe.annotate.store.copying import copy_store

    tasks = varied(6)
    with AnnotationStore(data_dir / "source.sqlite3") as source, store_at("copy") as target:
        enqueue(source, "b1", tasks, per_item=1)
        token = source.add_annotator("ann")
        copy_store(source, target)
        for opened in (source, target):
            who = opened.authenticate(token)
            for _ in range(6):
                task = opened.next_task(who)
                assert task.rendered == {col: safe_html(getattr(task, col)) for col in ("prompt", "response_a", "response_b")}
                opened.answer(who, task.task_id, "A>B")
        assert rows(source, "SELECT prompt_html, response_a_html, response_b_html FROM items ORDER BY id") == \
            rows(target, "SELECT prompt_html, response_a_html, response_b_html FROM items ORDER BY id")


def test_a_store_written_with_every_html_stored_keeps_it_and_serves_it(store):
    """An item queued by the previous version has its HTML in full: it is served as it is, and a
    rerun leaves it alone (nothing to rewrite)."""
    enqueue(store, "b1", pairs(2), per_item=1)
    stored = rows(store, "SELECT prompt, response_a, response_b, id FROM items")
    with store.engine.begin() as conn:  # as version 3 stored every text's HTML
        for prompt, a, b, item in stored:
            conn.execute(sa.text("UPDATE items SET prompt_html = :p, response_a_html = :a, response_b_html = :b WHERE id = :id"),
                         {"p": safe_html(prompt), "a": safe_html(a), "b": safe_html(b), "id": item})
    assert enqueue(store, "b1", pairs(2), per_item=1)["unchanged"] == 2
    assert scalar(store, "SELECT count(*) FROM items WHERE prompt_html = :mark", mark=PARAGRAPHS_MARK) == 0
    task = store.next_task(store.authenticate(store.add_annotator("ann")))
    assert task.rendered["prompt"] == safe_html(task.prompt) == f"<p>{task.prompt}</p>\n"


def test_a_rerun_reads_the_stored_items_once_unless_someone_wrote_between_the_looks(store_at, monkeypatch):
    """The items read before the write lock are reused under it when nothing was written meanwhile
    (SQLite); a write by another connection, or by this one, makes the second look read them again."""
    looks = []
    real = queue._existing
    monkeypatch.setattr(queue, "_existing", lambda conn, batch: looks.append(batch) or real(conn, batch))
    with store_at("looks") as store:
        enqueue(store, "b1", pairs(3))
        postgresql = store.postgresql
        looks.clear()
        assert enqueue(store, "b1", pairs(3))["unchanged"] == 3
        assert len(looks) == (2 if postgresql else 1)

        class Raced(queue._Html):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                with store_at("looks") as other, other.engine.begin() as conn:  # another connection, as another process
                    conn.exec_driver_sql("UPDATE items SET response_a = 'other', content_key = 'other' WHERE pair_id = 'p1'")

        monkeypatch.setattr(queue, "_Html", Raced)
        looks.clear()
        counts = enqueue(store, "b1", pairs(3))
        assert (counts["updated"], counts["unchanged"], len(looks)) == (1, 2, 2)
        assert rows(store, "SELECT response_a FROM items WHERE pair_id = 'p1'") == [("Response p1 side a",)]
