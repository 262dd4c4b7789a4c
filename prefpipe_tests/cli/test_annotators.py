"""The commands: annotators, queue add, annotations export, and annotate serving on a free port."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from prefpipe.annotate.store import AnnotationStore
from prefpipe.cli import main
from prefpipe.core import settings
from prefpipe.core.guidelines import load_guidelines
from prefpipe_tests.conftest import PROJECT_ROOT


@pytest.fixture
def guidelines(data_dir: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "data" / "guidelines", data_dir / "guidelines")
    return data_dir / "guidelines"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pair(i: int, **extra) -> dict:
    return {"pair_id": f"p{i}", "prompt": f"Q{i}", "response_a": f"a{i}", "response_b": f"b{i}", **extra}


def test_annotators_add_list_disable_unflag(data_dir, capsys):
    assert main(["annotators", "add", "alice"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("pp_")
    assert main(["annotators", "add", "boss", "--role", "admin"]) == 0
    assert main(["annotators", "add", "alice"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["annotators", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"alice\s+annotator\s+active", out) and re.search(r"boss\s+admin\s+active", out)
    assert token not in out
    assert main(["annotators", "disable", "alice"]) == 0
    assert main(["annotators", "unflag", "boss"]) == 0
    assert main(["annotators", "disable", "nobody"]) == 1
    main(["annotators", "list"])
    assert re.search(r"alice\s+annotator\s+disabled", capsys.readouterr().out)
    with AnnotationStore() as store:
        assert store.authenticate(token) is None


def test_annotators_rotate_prints_a_new_token_and_the_old_one_stops_working(data_dir, capsys):
    assert main(["annotators", "add", "alice", "--days", "2"]) == 0
    old = capsys.readouterr().out.strip()
    assert main(["annotators", "rotate", "alice"]) == 0
    out, err = capsys.readouterr()
    new = out.strip()
    assert new.startswith("pp_") and new != old and "old one no longer works" in err and "valid 30 days" in err
    assert main(["annotators", "rotate", "nobody"]) == 1
    assert "no annotator called 'nobody'" in capsys.readouterr().err
    with AnnotationStore() as store:
        assert store.authenticate(old) is None and store.authenticate(new).name == "alice"
    main(["annotators", "list"])
    assert re.search(r"alice\s+annotator\s+active.*\d{4}-\d\d-\d\dT", capsys.readouterr().out)


def test_queue_add_scopes_gold_to_its_batch_unless_told_global(data_dir, guidelines, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair(0)])
    gold = write_jsonl(tmp_path / "gold.jsonl", [pair(90, label="A>B")])
    assert main(["queue", "add", str(pairs), "--batch", "demo", "--gold", str(gold)]) == 0
    assert main(["queue", "add", str(pairs), "--batch", "pool", "--gold", str(gold), "--gold-scope", "global"]) == 0
    with AnnotationStore() as store:
        assert dict(zip(store.gold_items()["batch_id"], store.gold_items()["scope"])) == {"demo": "batch", "pool": "global"}


def test_queue_add_uses_the_guidelines_and_is_idempotent(data_dir, guidelines, tmp_path, capsys):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(5)] + [pair(5, route="expert", priority=3)])
    gold = write_jsonl(tmp_path / "gold.jsonl", [pair(90, label="A>B"), pair(91, label="B>>A")])
    assert main(["queue", "add", str(pairs), "--batch", "demo", "--gold", str(gold), "--per-item", "2"]) == 0
    first = capsys.readouterr().out
    assert "6 new tasks" in first and "2 new gold" in first and load_guidelines().version in first
    assert main(["queue", "add", str(pairs), "--batch", "demo", "--gold", str(gold), "--per-item", "2"]) == 0
    assert "0 new tasks" in capsys.readouterr().out
    with AnnotationStore() as store:
        status = store.batch_status("demo")
        assert status == {"items": 6, "gold_items": 2, "labels_wanted": 11, "answered": 0, "skipped": 0, "pending": 0}
        token = store.add_annotator("expert", "expert")
        expert = store.authenticate(token)
        task = store.next_task(expert)
        while task.prompt in ("Q90", "Q91"):  # a hidden gold slot may come first (its position is random)
            store.answer(expert, task.task_id, "A>B")
            task = store.next_task(expert)
        assert task.prompt == "Q5"  # the expert queue first
        assert [d["name"] for d in task.rubric] == [d.name for d in load_guidelines().dimensions]


def test_queue_add_rejects_a_bad_file_and_loads_nothing(data_dir, guidelines, tmp_path, capsys):
    bad = write_jsonl(tmp_path / "pairs.jsonl", [pair(0), {"pair_id": "p1", "prompt": "Q"}])
    assert main(["queue", "add", str(bad), "--batch", "demo"]) == 1
    assert "pairs.jsonl:2: field 'response_a'" in capsys.readouterr().err
    with AnnotationStore() as store:
        assert store.batch_status("demo")["items"] == 0


def test_queue_add_without_guidelines_says_so(data_dir, tmp_path, capsys):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair(0)])
    assert main(["queue", "add", str(pairs), "--batch", "demo"]) == 1
    assert "guidelines" in capsys.readouterr().err


def test_annotations_export(data_dir, guidelines, tmp_path, capsys):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(2)])
    main(["queue", "add", str(pairs), "--batch", "demo", "--per-item", "1"])
    with AnnotationStore() as store:
        who = store.authenticate(store.add_annotator("alice"))
        task = store.next_task(who)
        store.answer(who, task.task_id, "A>B")
    out = tmp_path / "export.jsonl"
    assert main(["annotations", "export", "--batch", "demo", "--out", str(out)]) == 0
    assert "wrote 1 annotations" in capsys.readouterr().out
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["annotator_id"] == "alice" and row["pair_id"] in ("p0", "p1") and row["is_gold"] is False


def test_annotate_serves_on_the_port_it_prints(data_dir, guidelines):
    env = dict(os.environ, PREFPIPE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    with AnnotationStore(data_dir / "annotations.sqlite3") as store:
        token = store.add_annotator("ann")
    proc = subprocess.Popen([sys.executable, "-m", "prefpipe.cli", "annotate", "--port", "0", "--max-body-bytes", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(url + "/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server never answered"
                time.sleep(0.05)
        assert r.json() == {"ok": True}
        assert httpx.get(url + "/api/tasks/next").status_code == 401
        big = httpx.post(url + "/api/tasks/x/skip", headers={"Authorization": f"Bearer {token}"}, json={"reason": "r" * 3000})
        assert big.status_code == 413
        assert httpx.get(url + "/api/openapi.json", headers={"Authorization": f"Bearer {token}"}).status_code == 404
        assert str(data_dir / "annotations.sqlite3") in line
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_gold_recheck_after_a_guideline_change(data_dir, guidelines, tmp_path, capsys):
    """Gold loaded under the old guidelines is listed stale after the guideline file changes;
    an expert reviews an exported file, corrects one key and confirms the other in one command.
    The team copies one gold file into two batches: each pair is one decision."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(3)])
    gold = write_jsonl(tmp_path / "gold.jsonl", [pair(90, label="A>B"), pair(91, label="B>>A")])
    assert main(["queue", "add", str(pairs), "--batch", "demo", "--gold", str(gold)]) == 0
    assert main(["queue", "add", str(pairs), "--batch", "demo2", "--gold", str(gold)]) == 0
    old_version = load_guidelines().version
    main(["gold", "list"])
    assert "0 written under an older version" in capsys.readouterr().out

    text = guidelines / "guidelines.md"
    text.write_text(text.read_text(encoding="utf-8") + "\nTies: prefer A=B when both answers are equally wrong.\n", encoding="utf-8")
    assert load_guidelines().version != old_version
    assert main(["queue", "add", str(pairs), "--batch", "demo", "--gold", str(gold)]) == 0  # the rerun: not a re-check
    capsys.readouterr()
    assert main(["gold", "list", "--stale"]) == 0
    out = capsys.readouterr().out
    assert "4 written under an older version" in out and re.search(r"p90\s+A>B\s+STALE", out) and old_version in out

    review = tmp_path / "review.jsonl"
    assert main(["gold", "export", "--out", str(review)]) == 0
    rows = [json.loads(line) for line in review.read_text().splitlines()]
    assert [r["pair_id"] for r in rows] == ["p90", "p91"] and rows[0]["key_version"] == old_version
    assert rows[0]["batches"] == ["demo", "demo2"]
    rows[1]["label"] = "B>A"  # the expert corrects one key under the new guidelines
    write_jsonl(review, rows)
    capsys.readouterr()
    assert main(["gold", "recheck", "--file", str(review), "--expert", "nobody"]) == 1
    assert "not an active expert" in capsys.readouterr().err
    with AnnotationStore() as store:
        store.add_annotator("erin", "expert")
        assert store.gold_items(load_guidelines().version)["stale"].all()  # a refused re-check wrote nothing
    tampered = [dict(rows[0], response_a="something else"), rows[1]]
    write_jsonl(tmp_path / "tampered.jsonl", tampered)
    assert main(["gold", "recheck", "--file", str(tmp_path / "tampered.jsonl"), "--expert", "erin"]) == 1
    assert "text differs" in capsys.readouterr().err
    assert main(["gold", "recheck", "--file", str(review), "--expert", "erin"]) == 0
    out = capsys.readouterr().out
    assert "1 confirmed, 1 corrected" in out and "p91: B>>A -> B>A" in out
    main(["gold", "list", "--stale"])
    assert "0 written under an older version" in capsys.readouterr().out
    assert main(["gold", "recheck", "p90", "--expert", "erin", "--label", "A=B"]) == 0
    with AnnotationStore() as store:
        keys = store.gold_items(load_guidelines().version).set_index("pair_id")
    assert set(keys.loc["p90", "gold_label"]) == {"A=B"} and set(keys.loc["p91", "gold_label"]) == {"B>A"}
    assert set(keys.loc["p91", "checked_by"]) == {"erin"}


def test_queue_add_asks_as_many_labels_as_the_batch_wants(data_dir, guidelines, tmp_path, capsys):
    """Without --per-item the queue asks the batch's labels_per_pair (batch.json), the number its
    final labels wait for; a batch without one gets the pipeline's default of 3."""
    batch = settings.batch_dir("four")
    batch.mkdir(parents=True)
    (batch / "batch.json").write_text(json.dumps({"labels_per_pair": 4}), encoding="utf-8")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(5)] + [pair(5, route="expert")])
    assert main(["queue", "add", str(pairs), "--batch", "four"]) == 0
    assert "4 label(s) a pair" in capsys.readouterr().out
    assert main(["queue", "add", str(pairs), "--batch", "plain"]) == 0
    with AnnotationStore() as store:
        assert store.batch_status("four")["labels_wanted"] == 5 * 4 + 1  # an expert pair wants its one expert
        assert store.batch_status("plain")["labels_wanted"] == 5 * 3 + 1
    (batch / "batch.json").write_text('{"labels_per_pair": 0}', encoding="utf-8")
    assert main(["queue", "add", str(pairs), "--batch", "four"]) == 1
    assert "labels_per_pair" in capsys.readouterr().err
