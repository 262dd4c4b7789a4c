"""What the card and the report say of a batch: only what its facts show."""

from __future__ import annotations

from dataclasses import replace

from prefpipe.core.batch_facts import BatchFacts, JudgeFacts
from prefpipe.core.dataset_versions import DatasetChange, DatasetVersion, Publication
from prefpipe.reports.batch_story import how_it_was_made, left_as_they_were, version_sentences, why_nothing_published

ROUTES0 = {"accepted": 0, "spot_check": 0, "human": 0, "expert": 0, "over_budget": 0}


def demo_like() -> BatchFacts:
    """The shipped demo: imported one-order verdicts, every pair to people, three imported labels each."""
    return BatchFacts(
        batch_id="demo", pairs=999, dropped=0, judge_setting=None,
        judges=(JudgeFacts("gpt-3.5-turbo", True, 999, 974, 25, 0, 0, 0, 974),),
        routes={**ROUTES0, "human": 999}, reasons={"human": {"no_confidence": 974, "unparsed": 25}}, labels_per_pair=(3,),
        labels_wanted=2997, labels_received=2997, human_labels=2997, imported_human_labels=2997, skipped=0, annotators=3,
        annotators_left_out=0, gold_answers=0, final_by_source={"human": 999}, final_by_method={"majority": 999}, ties=105,
        waiting=0, waiting_with_labels=0, ai_guideline_versions={"pandalm-v1": 999}, human_guideline_versions={"pandalm-v1": 2997},
    )


def test_the_demo_is_told_as_it_happened():
    text = " ".join(how_it_was_made(demo_like(), rows=894))
    assert "prefpipe asked no AI judge: 999 verdicts of gpt-3.5-turbo were imported from the batch folder" in text
    assert "in one order only" in text and "both orders" not in text
    assert "Every pair went to people (974 with a verdict without a confidence and 25 with no readable verdict)" in text
    assert "accepted" not in text and "spot" not in text and "expert" not in text  # no route the batch did not take
    assert "3 labels a pair: 2,997 wanted, 2,997 received" in text and "2,997 imported from the batch folder" in text
    assert "No gold question was answered" in text and "hidden gold" not in text
    assert "999 pairs are final: 999 by people (majority vote). No pair waits for people." in text
    assert "894 final labels carry a preference" in text and "105 ties" in text
    assert "guideline version pandalm-v1 (999)" in text and "no prefpipe judge prompt" in text


def test_a_batch_without_a_judge_and_pairs_waiting():
    facts = replace(demo_like(), judge_setting="none", judges=(), reasons={"human": {"no_ai_label": 4}}, routes={**ROUTES0, "human": 4},
                    pairs=4, labels_per_pair=(2,), labels_wanted=8, labels_received=3, human_labels=3, imported_human_labels=0,
                    annotators=2, final_by_source={"human": 1}, final_by_method={"majority": 1}, ties=0, waiting=3,
                    waiting_with_labels=1, ai_guideline_versions={}, human_guideline_versions={"g1": 3})
    text = " ".join(how_it_was_made(facts))
    assert 'No AI judge (batch.json says "judge": "none").' in text and "Every pair went to people (4 with no AI verdict)" in text
    assert "2 labels a pair: 8 wanted, 3 received" in text and "3 made in prefpipe's annotation app" in text
    assert "1 pair is final: 1 by people (majority vote). 3 pairs still wait for people (1 of them with some of their labels)." in text
    assert "judge prompt" not in text
    assert why_nothing_published(replace(facts, final_by_source={})) == "no pair is complete yet: 3 waiting for people"


def test_a_judge_prefpipe_asked_in_both_orders():
    judge = JudgeFacts("m1", False, 10, 7, 1, 2, 0, 9, 0, ("judge_v1@abc",))
    facts = replace(demo_like(), pairs=10, judges=(judge,), routes={**ROUTES0, "accepted": 6, "spot_check": 1, "human": 3},
                    reasons={"human": {"position_inconsistent": 2, "unparsed": 1}}, judge_prompt_versions=("judge_v1@abc",))
    text = " ".join(how_it_was_made(facts))
    assert "prefpipe asked m1 with judge prompt judge_v1@abc to judge every pair, in both orders (A first, then B first)" in text
    assert "7 of them usable (1 unreadable and 2 position-inconsistent)" in text
    assert "Routing: 6 pairs accepted on the AI label, 1 pair accepted and spot-checked by people and 3 pairs sent to people" in text
    assert "prefpipe's judge prompt version judge_v1@abc" in text


def test_why_nothing_was_published_and_what_stays():
    ties = replace(demo_like(), final_by_source={"human": 3}, ties=3)
    assert why_nothing_published(ties) == "every final label is a tie (3): nothing to train on"
    old = DatasetVersion("abcd", "abcd" * 16, "b", "2026-01-01T00:00:00+00:00", "r1", 5, ("g1",), ())
    assert left_as_they_were(old, True) == "the files of version abcd (published at 2026-01-01T00:00:00+00:00, 5 rows) are left as they were"
    assert "before versions were recorded" in left_as_they_were(None, True) and left_as_they_were(None, False) == "no earlier files"


def test_a_version_says_what_changed_or_that_nothing_did():
    first = DatasetVersion("aaaa", "a" * 64, "b", "t1", "r1", 5, ("g1",), ())
    second = replace(first, version="bbbb", content_hash="b" * 64, run_id="r2", rows=6, previous="aaaa",
                     change=DatasetChange("aaaa", added=2, removed=1, labels_changed=3, otherwise_changed=0))
    (line,) = version_sentences(Publication(second, True, first))
    assert line.startswith("Version bbbb") and "since version aaaa: 2 pair(s) added, 1 removed, 3 with a changed label" in line
    (same,) = version_sentences(Publication(replace(second, run_id="r3"), False, second))
    assert "Version bbbb, unchanged" in same and "no new version recorded" in same and "(run r2)" in same
    gone = version_sentences(Publication(replace(second, change=None), True, first))[0]
    assert "not known (its files are gone)" in gone
    assert "first recorded version" in version_sentences(Publication(first, True, None))[0]
