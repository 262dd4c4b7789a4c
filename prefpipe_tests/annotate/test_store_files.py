"""The store's file: private to its owner (with its WAL files), and a store written by the previous
version (schema 2, fixtures/store_v2.sql, dumped from a store that version made) upgraded in place
with its tokens still working (issue item 7)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import httpx

from prefpipe.annotate.app import create_app
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import SCHEMA_VERSION, AnnotationStore
from prefpipe_tests.annotate.conftest import auth, enqueue, gold_pairs, pairs, scalar

V2_DUMP = Path(__file__).with_name("fixtures") / "store_v2.sql"
V2_TOKENS = {"fred": "pp__jJy3YPtRKCo2nMg8FLKRBKOmbD5ETXG5bQo5dYTH4o", "root": "pp_Z_EAnhUNOQbDhy0a29XVk0Qz2BPfr4onh3bS7eY_Zqk"}
"""fred (annotator: 3 answers, one task pending) and root (admin), as that version printed them."""


def modes(folder: Path, name: str) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.glob(name + "*")}


def test_the_store_and_its_wal_files_are_private_to_their_owner(data_dir):
    umask = os.umask(0o022)  # the usual umask, which made the file 0644
    try:
        with AnnotationStore(data_dir / "m.sqlite3") as store:
            enqueue(store, "b1", pairs(2), gold=gold_pairs(1))
            store.add_annotator("ann")
            assert modes(data_dir, "m.sqlite3") == {"m.sqlite3": 0o600, "m.sqlite3-wal": 0o600, "m.sqlite3-shm": 0o600}
    finally:
        os.umask(umask)


def test_an_older_world_readable_store_is_made_private_when_opened(data_dir):
    path = data_dir / "loose.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        path.chmod(0o644)
    with AnnotationStore(path) as store:
        store.add_annotator("ann")
        assert set(modes(data_dir, "loose.sqlite3").values()) == {0o600}


def test_a_store_from_the_previous_version_is_upgraded_and_its_tokens_keep_working(data_dir, clock):
    path = data_dir / "annotations.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(V2_DUMP.read_text(encoding="utf-8"))
    with AnnotationStore(path, clock=clock) as store, ServerThread(create_app(store)) as url, \
            httpx.Client(base_url=url) as http:
        assert bytes(scalar(store, "SELECT value FROM meta WHERE key = 'schema_version'")) == str(SCHEMA_VERSION).encode()
        fred, root = V2_TOKENS["fred"], V2_TOKENS["root"]
        assert http.get("/api/me", headers=auth(fred)).json()["answered"] == 3
        assert [r["name"] for r in http.get("/api/admin/annotators", headers=auth(root)).json()] == ["fred", "root"]
        session = http.post("/api/login", headers=auth(fred)).json()["token"]
        task = http.get("/api/tasks/next?render=html", headers=auth(session)).json()  # the task left pending
        assert task["rendered"]["prompt"] == f'<pre class="plain">{task["prompt"]}</pre>'  # stored before HTML was
        assert http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(session), json={"label": "A=B"}).status_code == 201
        assert len(store.annotations("b1")) == 4
        assert set(store.gold_items()["scope"]) == {"global"}  # as that version served it
        counts = enqueue(store, "b1", pairs(4), per_item=1, gold=gold_pairs(2), version="v1")  # the batch's next run
        assert counts["updated"] == 0 and counts["gold_updated"] == 2 and set(store.gold_items()["scope"]) == {"batch"}
        assert scalar(store, "SELECT count(*) FROM items WHERE prompt_html IS NULL") == 0
        clock.advance(30 * 24 * 3600 + 1)  # the upgrade gave the old tokens thirty days
        assert "expired" in http.get("/api/me", headers=auth(fred)).json()["detail"]
