"""`prefpipe judge` as users run it, and resuming a run killed halfway (a real subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefpipe.cli import main
from prefpipe.llm.cache import LLMCache
from prefpipe.testing.scripted_server import ScriptedServer
from prefpipe_tests.llm.fixtures import write_guidelines


def write_pairs(path: Path, n: int) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"pair_id": f"q{i}:0", "prompt": f"Question {i}?", "response_a": f"answer {i} [[q=0.{i % 10}]]", "response_b": f"reply {i} [[q=0.5]]"}) + "\n")
    return path


def test_judge_command_writes_labels(server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", 5)
    out, usage = tmp_path / "labels.jsonl", tmp_path / "usage.jsonl"
    args = ["judge", "--pairs", str(pairs), "--out", str(out), "--model", "m", "--concurrency", "4", "--base-url", server.base_url,
            "--cache", str(tmp_path / "c.sqlite3"), "--guidelines", str(write_guidelines(tmp_path / "g")), "--usage-out", str(usage)]
    assert main(args) == 0
    labels = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["pair_id"] for r in labels] == [f"q{i}:0" for i in range(5)]
    assert {"label", "status", "confidence"} <= set(labels[0]) and labels[0]["status"] in ("ok", "inconsistent")
    assert all(r["label"] is None or r["status"] == "ok" for r in labels)
    assert len(usage.read_text().splitlines()) == 10
    assert "wrote 5 label(s)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"pair_id": "x", "prompt": "p", "response_a": "a"}', "field 'response_b' is missing"),
        ("{not json", "not valid JSON"),
        ('{"pair_id": "x", "prompt": "p", "response_a": 3, "response_b": "b"}', "field 'response_a'"),
    ],
)
def test_bad_pairs_files_name_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"pair_id": "ok", "prompt": "p", "response_a": "a", "response_b": "b"}) + "\n" + line + "\n")
    code = main(["judge", "--pairs", str(pairs), "--out", str(tmp_path / "o.jsonl"), "--base-url", "http://127.0.0.1:9/v1", "--guidelines", str(write_guidelines(tmp_path / "g"))])
    err = capsys.readouterr().err
    assert code == 2 and f"{pairs}:2" in err and message in err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_sending_only_unanswered_requests(tmp_path: Path) -> None:
    n_pairs = 40  # 80 requests at concurrency 2 and 50 ms each: about 2 s of work
    pairs = write_pairs(tmp_path / "pairs.jsonl", n_pairs)
    cache = tmp_path / "cache.sqlite3"
    command = [sys.executable, "-m", "prefpipe.cli", "judge", "--pairs", str(pairs), "--out", str(tmp_path / "labels.jsonl"), "--model", "m",
               "--concurrency", "2", "--cache", str(cache), "--guidelines", str(write_guidelines(tmp_path / "g"))]
    with ScriptedServer(latency=0.05) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "EMPTY"}
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.counts["chat"] < 30 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        server.wait_idle()  # requests of the killed run still being answered belong to it
        first_run = [json.dumps(s.body, sort_keys=True) for s in server.chat_requests]
        with LLMCache(cache) as stored:
            kept = len(stored)
        assert 30 <= len(first_run) < 2 * n_pairs and kept >= len(first_run) - 2  # at most the 2 in flight were lost
        assert not (tmp_path / "labels.jsonl").exists()

        server.reset()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        second_run = [json.dumps(s.body, sort_keys=True) for s in server.chat_requests]
    assert len(second_run) == 2 * n_pairs - kept
    # nothing answered and stored by the killed run was asked again; only what was in flight
    assert len(set(second_run) & set(first_run)) == len(first_run) - kept
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == n_pairs
