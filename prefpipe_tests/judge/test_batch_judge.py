"""The judge's Batch API path as tables (`batch_judge`) against the scripted server: the same labels,
probabilities and ledger as the per-request path, the reminder retry as a second round, and the
vectorized verdict reading equal to `parse_verdict` + `span_probability`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from prefpipe.core.guidelines import Guidelines
from prefpipe.judge.batch_judge import _tail_probability
from prefpipe.judge.judge import JudgeConfig, judge_pairs
from prefpipe.judge.verdict import parse_verdict, span_probability
from prefpipe.testing.scripted_server import Reply, ScriptedServer
from prefpipe_tests.llm.fixtures import make_client

COLUMNS = ["label", "status", "confidence", "label_ab", "label_ba", "raw", "prompt_tokens", "completion_tokens", "cost_usd"]


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"pair_id": f"p{i}:0", "prompt": f"prompt {i} é", "response_a": f"answer a{i} [[q=0.{i % 10}]]",
                          "response_b": f"answer b{i} [[q=0.{(i * 7) % 10}]]"} for i in range(n)])


def test_batch_rounds_give_the_labels_of_the_per_request_path(server: ScriptedServer, tmp_path: Path, guidelines: Guidelines) -> None:
    server.state.batch_polls = 0
    server.on("answer a3 ", Reply("I think A is nicer."), Reply("VERDICT: A>B"))
    pairs = frame(40)
    first = judge_pairs(pairs, guidelines, [JudgeConfig()], make_client(server, tmp_path / "c.sqlite3"), batch_api=True)
    assert first.pending == 40 and first.labels.empty and len(first.batch_jobs) == 1 and first.batch_files[0]["requests"] == 80
    assert (first.usage["status"] == "pending").all() and len(first.usage) == 80
    second = judge_pairs(pairs, guidelines, [JudgeConfig()], make_client(server, tmp_path / "c.sqlite3"), batch_api=True)
    assert second.ingested == 80 and second.pending == 1 and len(second.batch_files) == 1  # the reminder, a second round
    assert not second.usage["cached"].any() and second.usage["batch"].all()  # bought by this run's ingest
    third = judge_pairs(pairs, guidelines, [JudgeConfig()], make_client(server, tmp_path / "c.sqlite3"), batch_api=True)
    assert third.pending == 0 and len(third.labels) == 40 and third.batch_jobs == []
    assert server.chat_requests == []
    plain = judge_pairs(pairs, guidelines, [JudgeConfig()], make_client(server, tmp_path / "c.sqlite3"))
    assert server.chat_requests == []  # every answer is an ordinary cache hit now
    a, b = third.labels.set_index("pair_id").sort_index(), plain.labels.set_index("pair_id").sort_index()
    pd.testing.assert_frame_equal(a[COLUMNS], b[COLUMNS], check_dtype=False)
    assert '"ab": "I think A is nicer.", "ab_retry": ' in a.loc["p3:0", "raw"]
    assert len(third.usage) == len(plain.usage) == 81 and third.usage["cached"].sum() == 80  # the reminder was bought by this run


@pytest.mark.parametrize("text", [
    "Response A is worth 0.53 and B 0.21.\nVERDICT: A>B", "VERDICT: B>>A", "why\n\nVERDICT: A=B", "x  y\t\nVERDICT: B>A",
])
def test_tail_probability_is_span_probability(text: str) -> None:
    parsed = parse_verdict(text)
    rng = np.random.default_rng(len(text))
    cuts = np.unique(np.concatenate([rng.integers(1, len(text), 6), [len(text)]]))
    logprobs = rng.normal(-0.3, 0.2, len(cuts)).astype("<f4")
    want = span_probability(text, cuts, logprobs, parsed.span)
    got = _tail_probability(pa.array([text], pa.large_string()), [cuts.astype("<u4").tobytes()], [logprobs.tobytes()], np.array([len(parsed.value)]))
    assert got[0] == want
    assert np.isnan(_tail_probability(pa.array([text], pa.large_string()), [None], [None], np.array([3]))[0])
