"""The judge as a pointwise scorer (the default scorer of best-of-n and rejection sampling)."""

from __future__ import annotations

import math

import numpy as np

from prefpipe.core.guidelines import Guidelines
from prefpipe.judge.scorer import JudgeScorer
from prefpipe.llm.client import LLMClient
from prefpipe.testing.scripted_server import Reply, ScriptedServer


def test_scores_map_to_unit_interval_and_unscored_is_nan(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    server.on("<response>\nmumble", Reply("It is fine."), repeat=True)
    server.on("<response>\nlate", Reply("Hmm."), Reply("SCORE: 4"))
    scorer = JudgeScorer(client, guidelines, "scorer-model")
    scores = scorer(["q1", "q2", "q3", "q4"], ["best [[q=1.0]]", "worst [[q=0.0]]", "mumble", "late"], item_ids=["a", "b", "c", "d"])
    assert scores[0] == 1.0 and scores[1] == 0.0 and math.isnan(scores[2]) and scores[3] == (4 - 1) / 9
    assert scorer.problems[2] and "no SCORE line" in scorer.problems[2] and scorer.problems[3] is None
    assert isinstance(scores, np.ndarray) and {s.body["model"] for s in server.chat_requests} == {"scorer-model"}
