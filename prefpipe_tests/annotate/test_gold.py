"""Gold policy: slots, correctness and the flag rule."""

from __future__ import annotations

import pytest

from prefpipe.annotate.gold import GoldPolicy, flag_reason, gold_slot, is_correct, is_gold_turn


def test_one_gold_slot_per_block_at_unpredictable_positions():
    policy = GoldPolicy(rate=0.10)
    secret = b"k" * 32
    turns = [is_gold_turn(secret, 7, n, policy) for n in range(1000)]
    assert all(sum(turns[i : i + 10]) == 1 for i in range(0, 1000, 10))
    positions = [turns[i : i + 10].index(True) for i in range(0, 1000, 10)]
    assert len(set(positions)) == 10  # every position is used
    other_annotator = [gold_slot(secret, 8, b, 10) for b in range(100)]
    other_secret = [gold_slot(b"x" * 32, 7, b, 10) for b in range(100)]
    assert other_annotator != positions and other_secret != positions


def test_direction_match_by_default_exact_on_request():
    assert is_correct("A>B", "A>>B", GoldPolicy())
    assert not is_correct("A=B", "A>>B", GoldPolicy())
    assert not is_correct("B>A", "A>B", GoldPolicy())
    assert not is_correct("A>B", "A>>B", GoldPolicy(match="exact"))
    assert is_correct("A=B", "A=B", GoldPolicy(match="exact"))


def test_flag_rule_needs_five_answers_and_under_sixty_percent():
    policy = GoldPolicy()
    assert flag_reason(4, 0, policy) is None
    assert flag_reason(5, 3, policy) is None  # 60% is not under 60%
    reason = flag_reason(5, 2, policy)
    assert reason is not None and "40%" in reason and "2 of 5" in reason


def test_policy_from_the_rubric_thresholds_and_bad_values():
    policy = GoldPolicy.from_thresholds({"gold_rate": 0.05, "gold_min_answers": 8, "gold_min_accuracy": 0.7})
    assert (policy.block, policy.min_answers, policy.min_accuracy) == (20, 8, 0.7)
    assert GoldPolicy.from_thresholds({}) == GoldPolicy()
    with pytest.raises(ValueError, match="rate"):
        GoldPolicy(rate=0)
    with pytest.raises(ValueError, match="match"):
        GoldPolicy(match="fuzzy")  # type: ignore[arg-type]
