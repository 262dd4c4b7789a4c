from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from statsmodels.stats.proportion import proportion_confint

from prefpipe.core import final_labels as fl
from prefpipe.core import routing as rt
from prefpipe.core import spot_checks as sc
from prefpipe.learning import budget
from prefpipe.core import schemas
from prefpipe.core.labels import LabelError


def ai_frame(rows: list[tuple]) -> pd.DataFrame:
    """rows of (pair_id, label, status, confidence)."""
    df = pd.DataFrame(rows, columns=["pair_id", "label", "status", "confidence"])
    df["judge"] = "judge-1"
    return df


def many_confident(n: int, prefix: str = "p") -> pd.DataFrame:
    return ai_frame([(f"{prefix}{i}", "A>B", "ok", 0.9) for i in range(n)])


NO_SPOT = rt.RoutingConfig(spot_check_rate=0.0)


def annotation(pair_id, label, annotator="ann1", role="annotator", is_gold=False, created_at="2026-01-01T00:00:00Z",
               version="g1"):
    return {"pair_id": pair_id, "annotator_id": annotator, "label": label, "role": role, "is_gold": is_gold,
            "created_at": created_at, "guideline_version": version}


# ---------------------------------------------------------------------------------------------- rules


def test_each_rule_routes_with_its_reason():
    ai = ai_frame([
        ("sure", "A>B", "ok", 0.9),
        ("edge", "B>>A", "ok", 0.75),
        ("unsure", "A>B", "ok", 0.74),
        ("unparsed", None, "unparsed", None),
        ("failed", None, "failed", None),
        ("inconsistent", None, "inconsistent", None),
        ("nolabel", None, "ok", None),
        ("noconf", "A=B", "ok", None),
    ])
    out = budget.route_pairs(ai, NO_SPOT).set_index("pair_id")
    assert list(budget.route_pairs(ai, NO_SPOT).columns) == list(schemas.ROUTING)
    expected = {
        "sure": ("accepted", rt.CONFIDENT),
        "edge": ("accepted", rt.CONFIDENT),
        "unsure": ("human", rt.LOW_CONFIDENCE),
        "unparsed": ("human", rt.UNPARSED),
        "failed": ("human", rt.FAILED),
        "inconsistent": ("human", rt.INCONSISTENT),
        "nolabel": ("human", rt.NO_LABEL),
        "noconf": ("human", rt.NO_CONFIDENCE),
    }
    for pair, (route, reason) in expected.items():
        assert (out.loc[pair, "route"], out.loc[pair, "reason"]) == (route, reason), pair
    assert out.loc["edge", "ai_label"] == "B>>A" and out.loc["edge", "ai_confidence"] == 0.75
    assert out.loc["unparsed", "ai_status"] == "unparsed" and pd.isna(out.loc["unparsed", "ai_label"])


def test_inconsistent_with_a_label_is_accepted_only_when_consistency_is_not_required():
    ai = ai_frame([("x", "A>B", "inconsistent", 0.9)])
    assert budget.route_pairs(ai, NO_SPOT)["route"].item() == "human"
    relaxed = rt.RoutingConfig(spot_check_rate=0.0, require_consistent=False)
    assert budget.route_pairs(ai, relaxed)["route"].item() == "accepted"


def test_pairs_without_ai_label_go_to_people_and_dropped_pairs_are_ignored():
    ai = ai_frame([("a", "A>B", "ok", 0.9)])
    pairs = pd.DataFrame({"pair_id": ["a", "b", "c"], "dropped": [False, False, True]})
    out = budget.route_pairs(ai, NO_SPOT, pairs=pairs).set_index("pair_id")
    assert set(out.index) == {"a", "b"}
    assert (out.loc["b", "route"], out.loc["b", "reason"]) == ("human", rt.NO_AI_LABEL)
    with pytest.raises(ValueError, match="not among the"):
        budget.route_pairs(ai_frame([("zzz", "A>B", "ok", 0.9)]), NO_SPOT, pairs=pairs)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="more than once.*dup"):
        budget.route_pairs(ai_frame([("dup", "A>B", "ok", 0.9), ("dup", "B>A", "ok", 0.8)]))
    with pytest.raises(ValueError, match="status.*'weird'"):
        budget.route_pairs(ai_frame([("a", "A>B", "weird", 0.9)]))
    with pytest.raises(LabelError, match="ai_labels.label"):
        budget.route_pairs(ai_frame([("a", "A>>>B", "ok", 0.9)]))
    with pytest.raises(KeyError, match="confidence"):
        budget.route_pairs(pd.DataFrame({"pair_id": ["a"], "label": ["A>B"], "status": ["ok"]}))
    with pytest.raises(ValueError, match="accept_confidence"):
        rt.RoutingConfig(accept_confidence=1.5)
    with pytest.raises(ValueError, match="budget_strategy"):
        rt.RoutingConfig(budget_strategy="psychic")


# ---------------------------------------------------------------------------------------------- spot checks


def test_spot_checks_are_a_seeded_five_percent_independent_of_row_order():
    ai = many_confident(4000)
    out = budget.route_pairs(ai, rt.RoutingConfig(seed=7))
    spot = set(out.loc[out["route"] == "spot_check", "pair_id"])
    assert len(spot) == 200
    assert (out.loc[out["route"] == "spot_check", "reason"] == rt.SPOT_CHECK).all()
    shuffled = ai.sample(frac=1.0, random_state=3)
    again = budget.route_pairs(shuffled, rt.RoutingConfig(seed=7))
    assert set(again.loc[again["route"] == "spot_check", "pair_id"]) == spot
    other = budget.route_pairs(ai, rt.RoutingConfig(seed=8))
    assert set(other.loc[other["route"] == "spot_check", "pair_id"]) != spot
    # only accepted pairs are ever spot-checked, and a small batch still gets one
    small = budget.route_pairs(ai_frame([("a", "A>B", "ok", 0.9), ("b", "A>B", "ok", 0.1)]), rt.RoutingConfig())
    assert small.set_index("pair_id")["route"].to_dict() == {"a": "spot_check", "b": "human"}


# ---------------------------------------------------------------------------------------------- budgets


def test_budget_counts_labels_and_keeps_the_least_confident_by_default_without_texts():
    conf = np.linspace(0.05, 0.70, 100)
    ai = ai_frame([(f"h{i}", "A>B", "ok", c) for i, c in enumerate(conf)])
    cfg = rt.RoutingConfig(spot_check_rate=0.0, human_budget=21, labels_per_pair=2)
    out = budget.route_pairs(ai, cfg)
    human = out[out["route"] == "human"]
    assert len(human) == 10  # 21 labels // 2 per pair
    assert set(human["pair_id"]) == {f"h{i}" for i in range(10)}  # the ten least confident
    over = out[out["route"] == "over_budget"]
    assert len(over) == 90
    assert over["reason"].str.startswith("over_budget (uncertainty, judge confidence): low_confidence").all()
    assert over["ai_label"].eq("A>B").all()  # the AI label is still there to stand


def test_budget_serves_spot_checks_first():
    ai = pd.concat([many_confident(200, "acc"), ai_frame([(f"low{i}", "B>A", "ok", 0.3) for i in range(50)])])
    out = budget.route_pairs(ai, rt.RoutingConfig(human_budget=12))
    counts = rt.route_counts(out)
    assert counts == {"accepted": 190, "spot_check": 10, "human": 2, "expert": 0, "over_budget": 48}
    tight = budget.route_pairs(ai, rt.RoutingConfig(human_budget=4))
    counts = rt.route_counts(tight)
    assert counts["spot_check"] == 4 and counts["human"] == 0 and counts["over_budget"] == 50
    assert (tight["reason"] == rt.SPOT_CHECK_OVER_BUDGET).sum() == 6
    none = budget.route_pairs(ai, rt.RoutingConfig(human_budget=0))
    assert rt.route_counts(none)["spot_check"] == 0 and rt.route_counts(none)["over_budget"] == 50


def test_budget_with_texts_uses_diversity_over_prompt_topics():
    topics = ["cooking pasta sauce recipe", "python programming error", "football world cup match",
              "gardening tomato plants", "mortgage interest rates"]
    rows, prompts = [], []
    for i in range(50):
        rows.append((f"p{i}", "A>B", "ok", 0.5))
        prompts.append(f"Tell me about {topics[i % 5]} question {i}")
    ai = ai_frame(rows)
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(50)], "prompt": prompts,
                          "response_a": ["yes"] * 50, "response_b": ["no"] * 50})
    cfg = rt.RoutingConfig(spot_check_rate=0.0, human_budget=5, budget_strategy="diversity")
    out = budget.route_pairs(ai, cfg, pairs=pairs)
    chosen = out.loc[out["route"] == "human", "pair_id"].str[1:].astype(int)
    assert len(chosen) == 5
    assert sorted(chosen % 5) == [0, 1, 2, 3, 4]  # one pair per topic
    assert out.loc[out["route"] == "over_budget", "reason"].str.startswith("over_budget (diversity)").all()


def test_build_human_queue_orders_and_marks_over_budget():
    routing = pd.DataFrame({
        "pair_id": ["acc", "spot", "h_unsure", "h_very", "over", "exp"],
        "route": ["accepted", "spot_check", "human", "human", "over_budget", "expert"],
        "reason": ["x"] * 6,
        "ai_label": ["A>B"] * 6,
        "ai_confidence": [0.9, 0.9, 0.6, 0.1, 0.2, 0.9],
        "ai_status": ["ok"] * 6,
    })
    q = rt.build_human_queue(routing, rt.RoutingConfig(labels_per_pair=3))
    assert list(q.columns) == list(schemas.HUMAN_QUEUE)
    assert list(q["pair_id"]) == ["exp", "spot", "h_very", "h_unsure", "over"]
    assert q.set_index("pair_id")["labels_wanted"].to_dict() == {"exp": 1, "spot": 3, "h_very": 3, "h_unsure": 3, "over": 3}
    assert q.set_index("pair_id")["enqueued"].to_dict()["over"] is False or not q.set_index("pair_id").loc["over", "enqueued"]
    assert q["enqueued"].sum() == 4


# ---------------------------------------------------------------------------------------------- escalation


def spot_routing() -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": ["s_same", "s_strength", "s_flip", "s_tie", "s_split", "s_unlabelled", "h1"],
        "route": ["spot_check"] * 6 + ["human"],
        "reason": [rt.SPOT_CHECK] * 6 + [rt.LOW_CONFIDENCE],
        "ai_label": ["A>B", "A>>B", "A>B", "A>B", "B>A", "A>B", "A>B"],
        "ai_confidence": [0.9] * 7,
        "ai_status": ["ok"] * 7,
    })


def spot_annotations() -> pd.DataFrame:
    return pd.DataFrame([
        annotation("s_same", "A>B"),
        annotation("s_strength", "A>B"),  # strength differs, direction agrees
        annotation("s_flip", "B>A"),
        annotation("s_flip", "B>>A", annotator="ann2"),
        annotation("s_tie", "A=B"),
        annotation("s_split", "A>B"),
        annotation("s_split", "B>A", annotator="ann2"),
        annotation("s_unlabelled", None),  # skipped: no label
        annotation("s_same", "B>A", annotator="exp1", role="expert"),  # experts are not "the people"
        annotation("s_same", "B>>A", annotator="ann3", is_gold=True),  # gold rows are not spot checks
        annotation("h1", "B>A"),  # not a spot check
    ])


def test_escalate_spot_checks_is_directional():
    out = sc.escalate_spot_checks(spot_routing(), spot_annotations())
    assert list(out.columns) == list(schemas.ROUTING)
    assert set(out["pair_id"]) == {"s_flip", "s_tie", "s_split"}
    assert (out["route"] == "expert").all()
    reasons = out.set_index("pair_id")["reason"]
    assert reasons["s_flip"].startswith(rt.SPOT_CHECK_DISAGREES) and "people B (2 label(s))" in reasons["s_flip"]
    assert "people split" in reasons["s_split"]
    # the escalated rows feed the queue at the top
    q = rt.build_human_queue(out)
    assert (q["priority"] == 3.0).all() and (q["labels_wanted"] == 1).all()


def test_spot_check_disagreement_rate_and_wilson_interval_match_statsmodels():
    est = sc.spot_check_disagreement(spot_routing(), spot_annotations())
    assert (est.n_checked, est.n_disagree) == (5, 3)
    low, high = proportion_confint(3, 5, alpha=0.05, method="wilson")
    assert est.rate == pytest.approx(0.6)
    assert (est.ci_low, est.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert "honest estimate of the error" in est.statement and "3 of 5" in est.statement
    # a bigger sample and another level
    ai = many_confident(2000)
    routing = budget.route_pairs(ai, rt.RoutingConfig(seed=1))
    spots = routing.loc[routing["route"] == "spot_check", "pair_id"].tolist()
    labels = ["B>A" if i % 10 == 0 else "A>>B" for i in range(len(spots))]
    ann = pd.DataFrame([annotation(p, lab_) for p, lab_ in zip(spots, labels)])
    est = sc.spot_check_disagreement(routing, ann, confidence_level=0.9)
    k = sum(lab_ == "B>A" for lab_ in labels)
    low, high = proportion_confint(k, len(spots), alpha=0.1, method="wilson")
    assert (est.n_checked, est.n_disagree) == (100, k)
    assert est.ci_low == pytest.approx(low, abs=1e-12) and est.ci_high == pytest.approx(high, abs=1e-12)


def test_escalated_spot_checks_stay_in_the_disagreement_sample():
    """The routing table stores a disagreeing spot check as an expert escalation; the rate read back
    from it (routing metadata, the asset check) must still count it."""
    routing, people = spot_routing(), spot_annotations()
    experts = sc.escalate_spot_checks(routing, people)
    stored = pd.concat([routing[~routing["pair_id"].isin(experts["pair_id"])], experts], ignore_index=True)
    est = sc.spot_check_disagreement(stored, people)
    assert (est.n_checked, est.n_disagree) == (5, 3)


def test_spot_check_disagreement_without_labels_is_unknown_not_zero():
    est = sc.spot_check_disagreement(spot_routing(), pd.DataFrame(columns=["pair_id", "label"]))
    assert est.n_checked == 0 and np.isnan(est.rate) and np.isnan(est.ci_low)
    assert "unknown" in est.statement


# ---------------------------------------------------------------------------------------------- final labels


def test_combine_final_labels_precedence_and_never_invents():
    routing = pd.DataFrame({
        "pair_id": ["acc", "spot_nolabel", "spot_human", "spot_expert", "human_done", "human_waiting",
                    "over_ai", "over_nothing", "acc_expert"],
        "route": ["accepted", "spot_check", "spot_check", "expert", "human", "human", "over_budget",
                  "over_budget", "accepted"],
        "reason": ["x"] * 9,
        "ai_label": ["A>B", "B>A", "A>B", "A>B", "A=B", "A>B", "B>>A", None, "A>B"],
        "ai_confidence": [0.9, 0.8, 0.9, 0.9, 0.4, 0.3, 0.2, np.nan, 0.95],
        "ai_status": ["ok"] * 7 + ["unparsed", "ok"],
    })
    ai_labels = ai_frame([(p, lab_, "ok", c) for p, lab_, c in zip(routing["pair_id"], routing["ai_label"], routing["ai_confidence"])])
    ai_labels["guideline_version"] = "g_ai"
    human_final = pd.DataFrame({
        "pair_id": ["spot_human", "spot_expert", "human_done", "not_in_batch"],
        "label": ["B>A", "B>A", "A>>B", "A>B"],
        "confidence": [1.0, 1.0, 0.67, 1.0],
        "n_labels": [1, 1, 3, 1],
        "method": ["dawid_skene"] * 4,
    })
    experts = pd.DataFrame([
        annotation("spot_expert", "A>B", annotator="e1", role="expert", created_at="2026-01-02T00:00:00Z"),
        annotation("spot_expert", "B>A", annotator="e2", role="expert", created_at="2026-01-01T00:00:00Z", version="g0"),
        annotation("acc_expert", "B>>A", annotator="e1", role="expert"),
        annotation("human_waiting", "A>B", annotator="a1", role="annotator"),  # not an expert
    ])
    people = pd.DataFrame([
        annotation("human_done", "A>>B", annotator=a, version=v) for a, v in (("a1", "g1"), ("a2", "g2"), ("a3", "g1"))
    ])
    out = fl.combine_final_labels(routing, ai_labels, human_final, experts, human_annotations=people)
    assert list(out.columns) == list(schemas.FINAL_LABELS)
    got = out.set_index("pair_id")
    assert set(got.index) == {"acc", "spot_nolabel", "spot_human", "spot_expert", "human_done", "over_ai", "acc_expert"}
    assert got.loc["acc", ["label", "source", "method"]].tolist() == ["A>B", "ai", "ai"]
    assert got.loc["spot_nolabel", ["label", "source"]].tolist() == ["B>A", "ai"]
    assert got.loc["spot_human", ["label", "source", "method"]].tolist() == ["B>A", "human", "dawid_skene"]
    assert got.loc["spot_expert", ["label", "source", "method"]].tolist() == ["A>B", "expert", "expert"]
    assert got.loc["spot_expert", "confidence"] == 0.5 and got.loc["spot_expert", "n_labels"] == 2
    assert got.loc["acc_expert", ["label", "source"]].tolist() == ["B>>A", "expert"]
    assert got.loc["human_done", ["label", "n_labels"]].tolist() == ["A>>B", 3]
    assert got.loc["over_ai", ["label", "source", "confidence"]].tolist() == ["B>>A", "ai", 0.2]
    versions = got["guideline_version"]
    assert versions["spot_expert"] == "g0+g1" and versions["human_done"] == "g1+g2" and versions["acc"] == "g_ai"
    assert pd.isna(versions["spot_human"])  # nobody said which version its labels were made under
    # same labels from routing's own copy of the AI label (which carries no version)
    again = fl.combine_final_labels(routing, None, human_final, experts).set_index("pair_id")
    pd.testing.assert_frame_equal(got.drop(columns="guideline_version"), again.drop(columns="guideline_version"))


def test_budget_with_a_reward_model_spends_people_where_the_model_is_unsure():
    from prefpipe.learning.reward_model import RewardModel

    good, bad = "Here is a careful, complete answer with the steps.", "No."
    model = RewardModel().fit(["q"] * 20, [good] * 10 + [bad] * 10, [bad] * 10 + [good] * 10, ["A>B"] * 10 + ["B>A"] * 10)
    n = 30
    # the first ten pairs are clear-cut for the model; the other twenty show two equal answers
    a = [good] * 10 + ["Maybe."] * 20
    b = [bad] * 10 + ["Maybe."] * 20
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "prompt": [f"question {i}" for i in range(n)],
                          "response_a": a, "response_b": b})
    ai = ai_frame([(f"p{i}", "A>B", "ok", 0.5) for i in range(n)])
    cfg = rt.RoutingConfig(spot_check_rate=0.0, human_budget=8, budget_strategy="uncertainty")
    out = budget.route_pairs(ai, cfg, pairs=pairs, reward_model=model)
    chosen = out.loc[out["route"] == "human", "pair_id"].str[1:].astype(int)
    assert len(chosen) == 8 and (chosen >= 10).all()
    assert out.loc[out["route"] == "over_budget", "reason"].str.startswith("over_budget (uncertainty, reward model)").all()
    hybrid = budget.route_pairs(ai, rt.RoutingConfig(spot_check_rate=0.0, human_budget=8, budget_strategy="hybrid"),
                            pairs=pairs, reward_model=model)
    assert rt.route_counts(hybrid)["human"] == 8


# ---------------------------------------------------------------------------------------------- text in Arrow


def _arrow_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the warehouse loader gives it: text in Arrow (pandas string[pyarrow])."""
    return frame.astype({c: "string[pyarrow]" for c in frame.columns if frame[c].dtype == object})


def test_routing_and_spot_checks_are_the_same_whatever_the_text_is_held_in():
    ai = ai_frame([(f"p{i}", ["A>B", "B>>A", None][i % 3], ["ok", "ok", "unparsed"][i % 3], [0.9, 0.6, None][i % 3]) for i in range(300)])
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(299, -1, -1)] + ["extra", "gone"], "dropped": [False] * 301 + [True]})
    cfg = rt.RoutingConfig(spot_check_rate=0.2, seed=3)
    objects = budget.route_pairs(ai, cfg, pairs=pairs)
    arrow = budget.route_pairs(_arrow_text(ai), cfg, pairs=_arrow_text(pairs))
    pd.testing.assert_frame_equal(arrow.astype(object), objects.astype(object))
    assert objects.loc[objects["pair_id"] == "extra", "reason"].tolist() == [rt.NO_AI_LABEL] and "gone" not in set(objects["pair_id"])
    # the same pairs go to people as when the ids come in the pairs' own order
    same_order = budget.route_pairs(ai, cfg, pairs=pairs.iloc[::-1].iloc[2:].reset_index(drop=True))
    assert set(same_order.loc[same_order["route"] == "spot_check", "pair_id"]) == set(objects.loc[objects["route"] == "spot_check", "pair_id"])
    spots = objects.loc[objects["route"] == "spot_check", "pair_id"].tolist()
    people = pd.DataFrame([annotation(p, "B>A" if i % 4 == 0 else "A>B", annotator=f"a{j}") for i, p in enumerate(spots) for j in range(2)])
    for f in (sc.escalate_spot_checks, sc.spot_check_disagreement):
        a, b = f(objects, people), f(_arrow_text(objects), _arrow_text(people))
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a.astype(object), b.astype(object))
            assert len(a) == sum(1 for i in range(len(spots)) if i % 4 == 0)  # people said B where the AI said A
        else:
            assert a == b and a.n_checked == len(spots)


def test_spot_check_sample_is_the_same_for_arrow_ids():
    ids = [f"b-{i}:0" for i in range(500)]
    assert (rt.spot_check_sample(pd.Series(ids), 0.1, 4) == rt.spot_check_sample(pa.array(ids, pa.large_string()), 0.1, 4)).all()


def test_final_label_versions_join_in_code_point_order_whatever_came_first():
    routing = pd.DataFrame({"pair_id": ["a", "b", "c"], "route": ["human"] * 3, "reason": "x", "ai_label": None,
                            "ai_confidence": np.nan, "ai_status": "ok"})
    human_final = pd.DataFrame({"pair_id": ["c", "a", "b"], "label": ["A>B"] * 3, "confidence": 1.0, "n_labels": 3, "method": "majority"})
    versions = {"a": ["v3", "v1", "v2", "v1"], "b": ["v2"], "c": ["Z", None, "é", "v10"]}
    people = pd.DataFrame([annotation(p, "A>B", annotator=f"a{i}", version=v) for p, vs in versions.items() for i, v in enumerate(vs)])
    no_experts = pd.DataFrame(columns=["pair_id", "label", "role"])
    for frames in ((routing, human_final, people), tuple(_arrow_text(f) for f in (routing, human_final, people))):
        got = fl.combine_final_labels(frames[0], None, frames[1], no_experts, human_annotations=frames[2]).set_index("pair_id")
        assert got["guideline_version"].to_dict() == {"a": "v1+v2+v3", "b": "v2", "c": "Z+v10+é"}
        assert got.index.tolist() == ["a", "b", "c"]  # routing's order
