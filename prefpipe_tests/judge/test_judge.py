"""The judge end to end against the real scripted server: both orders, strict parsing with one
reminder, inconsistency, confidence from log-probabilities or from consistency, failures kept on
their rows, several judges, tokens and cost per row, and reruns from the cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from prefpipe.core import schemas
from prefpipe.core.guidelines import Guidelines
from prefpipe.judge.judge import JudgeConfig, JudgeResult, judge_pairs
from prefpipe.llm.client import LLMClient
from prefpipe.testing.scripted_server import Fault, Reply, ScriptedServer
from prefpipe_tests.llm.fixtures import make_client


def pairs(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"pair_id": pid, "prompt": f"prompt of {pid}", "response_a": a, "response_b": b} for pid, a, b in rows])


def run(client: LLMClient, guidelines: Guidelines, frame: pd.DataFrame, **judge: object) -> JudgeResult:
    return judge_pairs(frame, guidelines, [JudgeConfig(model="judge-model", **judge)], client)


def row(result: JudgeResult, pair_id: str) -> pd.Series:
    return result.labels.set_index("pair_id").loc[pair_id]


def test_consistent_orders_give_a_label_with_logprob_confidence(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    result = run(client, guidelines, pairs(("p:0", "good answer [[q=0.9]]", "weak answer [[q=0.2]]")))
    assert list(result.labels.columns) == list(schemas.AI_LABELS)
    r = row(result, "p:0")
    assert (r["label"], r["status"], r["label_ab"], r["label_ba"]) == ("A>>B", "ok", "A>>B", "A>>B")
    # the server gives the verdict tokens probability 0.55 + 0.4 * min(1, 0.7 / 0.5) = 0.95 in both orders
    assert r["confidence"] == pytest.approx(0.95)
    bodies = [s.body["messages"][-1]["content"] for s in server.chat_requests]
    assert len(bodies) == 2
    assert sum("<response_a>\nweak answer" in b for b in bodies) == 1  # the swapped order was asked
    raw = json.loads(r["raw"])
    assert raw["ab"].endswith("VERDICT: A>>B") and raw["ba"].endswith("VERDICT: B>>A")
    assert r["guideline_version"] == guidelines.version and r["judge_prompt_version"].startswith("judge_v1@")


def test_position_inconsistent_verdicts_have_no_label(tmp_path: Path, guidelines: Guidelines) -> None:
    with ScriptedServer(position_bias=0.2) as biased:
        result = run(make_client(biased, tmp_path / "c.sqlite3"), guidelines, pairs(("p:0", "one [[q=0.5]]", "two [[q=0.5]]")))
    r = row(result, "p:0")
    assert r["status"] == "inconsistent" and pd.isna(r["label"]) and pd.isna(r["confidence"])
    assert (r["label_ab"], r["label_ba"]) == ("A>B", "B>A")
    bias = result.bias_dict()["judge-model"]
    assert bias["position_flip_rate"] == 1.0 and bias["first_slot_rate"] == 1.0
    assert "A/B order said A>B, B/A order said B>A" in result.problems.iloc[0]["problem"]


def test_an_unparsed_answer_gets_one_reminder(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    server.on("<response_a>\nchatty", Reply("I think the first one is nicer."), Reply("VERDICT: A>B"))
    result = run(client, guidelines, pairs(("p:0", "chatty [[q=0.7]]", "plain [[q=0.5]]")))
    r = row(result, "p:0")
    assert (r["status"], r["label"]) == ("ok", "A>B")
    raw = json.loads(r["raw"])
    assert raw["ab"] == "I think the first one is nicer." and raw["ab_retry"] == "VERDICT: A>B"
    reminder = [s for s in server.chat_requests if len(s.body["messages"]) == 4]
    assert len(reminder) == 1 and reminder[0].body["messages"][2] == {"role": "assistant", "content": "I think the first one is nicer."}
    assert result.verdicts.set_index("order").loc["ab", "retried"]


@pytest.mark.parametrize(
    "reply, problem",
    [
        ("I'm sorry, I can't help with comparing these.", "refusal"),
        ("VERDICT: A>B\nActually, VERDICT: B>A\nVERDICT: B>A", "VERDICT lines"),
        ("They are about the same.", "no VERDICT line"),
    ],
)
def test_unparseable_twice_is_unparsed_with_raw_kept_never_a_tie(server: ScriptedServer, client: LLMClient, guidelines: Guidelines, reply: str, problem: str) -> None:
    server.on("<response_a>\nstubborn", Reply(reply), repeat=True)
    result = run(client, guidelines, pairs(("p:0", "stubborn [[q=0.5]]", "other [[q=0.5]]"), ("p:1", "fine [[q=0.9]]", "meh [[q=0.1]]")))
    r = row(result, "p:0")
    assert r["status"] == "unparsed" and pd.isna(r["label"]) and pd.isna(r["confidence"]) and pd.isna(r["label_ab"])
    raw = json.loads(r["raw"])
    assert raw["ab"] == reply and raw["ab_retry"] == reply
    assert problem in result.problems.set_index("pair_id").loc["p:0", "problem"]
    assert row(result, "p:1")["status"] == "ok"


def test_truncated_answer_is_retried_with_the_reminder(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    server.on("<response_a>\nlong", Fault("truncated"))
    result = run(client, guidelines, pairs(("p:0", "long [[q=0.9]]", "short [[q=0.5]]")))
    assert row(result, "p:0")["status"] == "ok"
    assert "VERDICT" not in json.loads(row(result, "p:0")["raw"])["ab"]


def test_a_failed_call_fails_its_row_not_the_batch(server: ScriptedServer, tmp_path: Path, guidelines: Guidelines) -> None:
    server.on("<response_a>\nbroken", Fault("500"), repeat=True)
    client = make_client(server, tmp_path / "c.sqlite3", max_attempts=2)
    result = run(client, guidelines, pairs(("p:0", "broken [[q=0.5]]", "x [[q=0.5]]"), ("p:1", "good [[q=0.9]]", "bad [[q=0.1]]")))
    assert row(result, "p:0")["status"] == "failed" and pd.isna(row(result, "p:0")["label"])
    assert "HTTP 500 after 2 attempt(s)" in result.problems.set_index("pair_id").loc["p:0", "problem"]
    assert row(result, "p:1")["status"] == "ok"


def test_confidence_from_consistency_without_logprobs_and_the_weaker_label(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    server.on("<response_a>\nstrong", Reply("VERDICT: A>>B"), repeat=True)
    server.on("<response_b>\nstrong", Reply("VERDICT: B>A"), repeat=True)  # the swapped order: mapped back, A>B
    frame = pairs(("p:0", "strong [[q=0.6]]", "x [[q=0.5]]"), ("p:1", "good [[q=0.9]]", "bad [[q=0.1]]"))
    result = run(client, guidelines, frame, logprobs=False)
    assert (row(result, "p:0")["label"], row(result, "p:0")["confidence"]) == ("A>B", 0.6)
    assert (row(result, "p:1")["label"], row(result, "p:1")["confidence"]) == ("A>>B", 0.9)
    assert all("logprobs" not in s.body for s in server.chat_requests)


def test_logprob_confidence_takes_the_smaller_when_strengths_differ(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    server.on("<response_a>\nstrong", Reply("VERDICT: A>>B", certainty=0.8), repeat=True)
    server.on("<response_b>\nstrong", Reply("VERDICT: B>A", certainty=0.6), repeat=True)
    result = run(client, guidelines, pairs(("p:0", "strong [[q=0.6]]", "x [[q=0.5]]")))
    assert row(result, "p:0")["label"] == "A>B" and row(result, "p:0")["confidence"] == pytest.approx(0.6)


def test_single_order_and_several_judges_side_by_side(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    frame = pairs(("p:0", "good [[q=0.9]]", "bad [[q=0.3]]"), ("p:1", "a [[q=0.4]]", "b [[q=0.45]]"))
    judges = [JudgeConfig(model="judge-a"), JudgeConfig(model="judge-b", both_orders=False), JudgeConfig(model="judge-b", logprobs=False, name="judge-b-plain", both_orders=False)]
    result = judge_pairs(frame, guidelines, judges, client)
    assert sorted(result.labels["judge"].unique()) == ["judge-a", "judge-b", "judge-b-plain"] and len(result.labels) == 6
    models = pd.Series([s.body["model"] for s in server.chat_requests]).value_counts().to_dict()
    assert models == {"judge-a": 4, "judge-b": 4}
    single = result.labels[result.labels["judge"] == "judge-b"].set_index("pair_id")
    assert single["label_ba"].isna().all() and single.loc["p:0", "label"] == "A>>B"
    assert single.loc["p:0", "confidence"] == pytest.approx(0.55 + 0.4 * min(1, 0.6 / 0.5))
    # one order and no log-probabilities: there is no evidence of confidence, so it is unknown
    plain = result.labels[result.labels["judge"] == "judge-b-plain"]
    assert plain["status"].eq("ok").all() and plain["confidence"].isna().all()
    with pytest.raises(ValueError, match="both named"):
        judge_pairs(frame, guidelines, [JudgeConfig(model="x"), JudgeConfig(model="x")], client)


def test_tokens_and_cost_add_up_every_call_of_the_row(server: ScriptedServer, tmp_path: Path, guidelines: Guidelines) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"judge-model": {"input": 3.0, "output": 12.0}}}))
    client = make_client(server, tmp_path / "c.sqlite3", prices_path=str(prices))
    server.on("<response_a>\nchatty", Reply("no verdict here"), Reply("VERDICT: A>B"))
    result = run(client, guidelines, pairs(("p:0", "chatty [[q=0.7]]", "plain [[q=0.5]]")))
    usage = result.usage
    assert len(usage) == 3 and sorted(usage["stage"]) == ["judge", "judge", "judge_retry"]
    r = row(result, "p:0")
    assert r["prompt_tokens"] == usage["prompt_tokens"].sum() and r["completion_tokens"] == usage["completion_tokens"].sum()
    assert r["cost_usd"] == pytest.approx((usage["prompt_tokens"].sum() * 3 + usage["completion_tokens"].sum() * 12) / 1e6)
    # a rerun takes everything from the cache: same cost for the label, nothing spent
    again = run(make_client(server, tmp_path / "c.sqlite3", prices_path=str(prices)), guidelines, pairs(("p:0", "chatty [[q=0.7]]", "plain [[q=0.5]]")))
    assert len(server.chat_requests) == 3
    assert again.usage["cached"].all() and again.usage["spent_usd"].sum() == 0
    pd.testing.assert_frame_equal(again.labels, result.labels)


def test_dropped_pairs_are_skipped_and_bad_pairs_are_named(client: LLMClient, guidelines: Guidelines) -> None:
    frame = pairs(("p:0", "a [[q=0.9]]", "b [[q=0.1]]"), ("p:1", "same", "same"))
    frame["dropped"] = [False, True]
    frame.loc[1, "response_b"] = None
    assert list(run(client, guidelines, frame).labels["pair_id"]) == ["p:0"]
    broken = pairs(("p:0", "a", "b"))
    broken.loc[0, "response_a"] = None
    with pytest.raises(ValueError, match="field 'response_a' is missing for pair 'p:0'"):
        run(client, guidelines, broken)
    with pytest.raises(ValueError, match="pair_id 'p:0' appears more than once"):
        run(client, guidelines, pd.concat([pairs(("p:0", "a", "b"))] * 2))


def test_bias_stats_count_first_slot_and_longer_preferences(server: ScriptedServer, client: LLMClient, guidelines: Guidelines) -> None:
    frame = pairs(
        ("p:0", "short [[q=0.9]]", "a much longer response that rambles on [[q=0.1]]"),
        ("p:1", "tiny [[q=0.1]]", "a much longer and better response indeed [[q=0.9]]"),
    )
    bias = run(client, guidelines, frame).bias_dict()["judge-model"]
    assert bias["ok"] == 2 and bias["position_flip_rate"] == 0.0
    assert bias["first_slot_rate"] == 0.5 and bias["longer_rate"] == 0.5 and math.isclose(bias["tie_rate"], 0.0)
