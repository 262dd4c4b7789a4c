"""The facts of a batch, counted from small tables worked by hand."""

from __future__ import annotations

import pandas as pd

from prefpipe.core.batch_facts import batch_facts
from prefpipe.core.ingest import EXTERNAL_PROMPT_VERSION

PAIRS = pd.DataFrame({"pair_id": [f"p{i}" for i in range(6)], "dropped": [False] * 5 + [True]})


def _ai() -> pd.DataFrame:
    """p0-p4: an imported judge (one order, p4 unreadable) beside prefpipe's own (both orders, p2 flipped)."""
    imported = pd.DataFrame({"pair_id": [f"p{i}" for i in range(5)], "judge": "vendor", "status": ["ok"] * 4 + ["unparsed"],
                             "label": ["A>B"] * 4 + [None], "label_ab": ["A>B"] * 4 + [None], "label_ba": None,
                             "judge_prompt_version": EXTERNAL_PROMPT_VERSION, "guideline_version": "vendor-v3"})
    own = pd.DataFrame({"pair_id": [f"p{i}" for i in range(5)], "judge": "m1", "status": ["ok", "ok", "inconsistent", "ok", "failed"],
                        "label": ["A>B", "B>A", None, "A>B", None], "label_ab": ["A>B", "B>A", "A>B", "A>B", None],
                        "label_ba": ["A>B", "B>A", "B>A", "A>B", None], "judge_prompt_version": "judge_v1@abc", "guideline_version": "g1"})
    return pd.concat([imported, own], ignore_index=True)


ROUTING = pd.DataFrame({"pair_id": ["p0", "p1", "p2", "p3", "p4"], "route": ["accepted", "spot_check", "human", "expert", "human"],
                        "reason": ["confident", "random_spot_check", "position_inconsistent", "spot_check_disagreement", "judge_failed"],
                        "labels_wanted": pd.array([None, 2, 2, 1, 2], dtype="Int64")})
HUMAN = pd.DataFrame({
    "pair_id": ["p1", "p1", "p2", "p2", "p3", "p4", "gold1", "p4"],
    "annotator_id": ["a", "b", "a", "b", "boss", "a", "a", "b"],
    "label": ["A>B", "A>B", "B>A", "B>A", "A>B", "A>B", "A>B", None],
    "role": ["annotator"] * 4 + ["expert"] + ["annotator"] * 3,
    "source": ["app", "import:annotations.jsonl", "app", "app", "app", "app", "app", "app"],
    "is_gold": [False] * 6 + [True, False], "guideline_version": "g1"})
FINAL = pd.DataFrame({"pair_id": ["p0", "p1", "p2", "p3"], "label": ["A>B", "A>B", "A=B", "A>B"],
                      "source": ["ai", "human", "human", "expert"], "method": ["ai", "majority", "majority", "expert"]})


def test_every_count_of_a_batch_worked_by_hand():
    facts = batch_facts("b", response_pairs=PAIRS, ai_labels=_ai(), routing=ROUTING, human_annotations=HUMAN, final_labels=FINAL,
                        annotator_reliability=pd.DataFrame({"annotator_id": ["a", "b"], "kept": [True, False]}), judge_setting="m1")
    assert (facts.pairs, facts.dropped, facts.live_pairs) == (6, 1, 5)
    vendor, own = facts.judges
    assert (vendor.name, vendor.imported, vendor.verdicts, vendor.usable, vendor.unparsed, vendor.both_orders, vendor.one_order) == (
        "vendor", True, 5, 4, 1, 0, 4)
    assert (own.name, own.imported, own.usable, own.inconsistent, own.failed, own.both_orders, own.one_order, own.prompt_versions) == (
        "m1", False, 3, 1, 1, 4, 0, ("judge_v1@abc",))
    assert dict(facts.routes) == {"accepted": 1, "spot_check": 1, "human": 2, "expert": 1, "over_budget": 0}
    assert dict(facts.reasons["human"]) == {"judge_failed": 1, "position_inconsistent": 1}
    assert facts.labels_per_pair == (2,) and facts.labels_wanted == 2 + 2 + 1 + 2
    # p1: a's (b is left out by reliability), p2: a's, p3: the expert's, p4: a's (a skip and a gold answer
    # are not labels): counted as filtered_annotations keeps them, the same figure as batch_status
    assert facts.labels_received == 4
    assert (facts.human_labels, facts.imported_human_labels, facts.skipped, facts.gold_answers, facts.annotators) == (6, 1, 1, 1, 3)
    assert facts.annotators_left_out == 1
    assert dict(facts.final_by_source) == {"human": 2, "ai": 1, "expert": 1} and facts.final == 4 and facts.ties == 1
    assert (facts.waiting, facts.waiting_with_labels) == (1, 1)  # p4: 1 of its 2 labels
    assert dict(facts.ai_guideline_versions) == {"g1": 5, "vendor-v3": 5} and dict(facts.human_guideline_versions) == {"g1": 6}
    assert facts.judge_prompt_versions == ("judge_v1@abc",) and facts.judge_setting == "m1"


def test_a_routing_table_without_labels_wanted_uses_the_runs_setting():
    old = ROUTING.drop(columns="labels_wanted")
    facts = batch_facts("b", response_pairs=PAIRS, ai_labels=None, routing=old, human_annotations=None, final_labels=None, labels_per_pair=3)
    assert facts.labels_per_pair == (3,) and facts.labels_wanted == 3 + 3 + 1 + 3
    assert facts.waiting == 3 and facts.labels_received == 0  # spot checks never wait: their AI label stands
    assert facts.judges == () and facts.final == 0


def test_nothing_yet_is_all_zeros():
    facts = batch_facts("b", response_pairs=None, ai_labels=None, routing=None, human_annotations=None, final_labels=None)
    assert (facts.pairs, facts.final, facts.waiting, facts.sent_to_people, facts.labels_per_pair) == (0, 0, 0, 0, ())
    assert set(facts.routes.values()) == {0}
