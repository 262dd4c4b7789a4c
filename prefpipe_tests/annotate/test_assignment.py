"""The annotator's view and the pair's own order, and rubric score validation."""

from __future__ import annotations

import pytest

from prefpipe.annotate.assignment import Candidate, choose, dimensions_to_pair, label_to_pair, validate_dimensions
from prefpipe.annotate.errors import FieldError
from prefpipe.core.labels import SCALE

RUBRIC = [{"name": "helpfulness"}, {"name": "correctness"}]


def test_labels_map_back_only_when_swapped():
    assert [label_to_pair(label, False) for label in SCALE] == list(SCALE)
    assert [label_to_pair(label, True) for label in SCALE] == list(reversed(SCALE))


def test_scores_follow_the_responses():
    shown = {"helpfulness": {"A": 5, "B": 2}, "correctness": {"A": 1}}
    assert dimensions_to_pair(shown, True) == {"helpfulness": {"B": 5, "A": 2}, "correctness": {"B": 1}}
    assert dimensions_to_pair(shown, False) == shown


@pytest.mark.parametrize(
    ("dimensions", "field"),
    [
        ("high", "dimensions"),
        ({"tone": {"A": 3}}, "dimensions.tone"),
        ({"helpfulness": 3}, "dimensions.helpfulness"),
        ({"helpfulness": {"C": 3}}, "dimensions.helpfulness.C"),
        ({"helpfulness": {"A": 6}}, "dimensions.helpfulness.A"),
        ({"helpfulness": {"B": 2.5}}, "dimensions.helpfulness.B"),
        ({"helpfulness": {"A": True}}, "dimensions.helpfulness.A"),
    ],
)
def test_bad_scores_name_their_field(dimensions, field):
    with pytest.raises(FieldError) as err:
        validate_dimensions(dimensions, RUBRIC, (1, 5))
    assert err.value.field == field


def test_good_scores_pass_and_none_is_empty():
    assert validate_dimensions({"helpfulness": {"A": 1, "B": 5}}, RUBRIC, (1, 5)) == {"helpfulness": {"A": 1, "B": 5}}
    assert validate_dimensions(None, RUBRIC, (1, 5)) == {}


def test_gold_only_stands_in_for_real_work():
    real, gold = Candidate(1, "b", "r"), Candidate(2, "g", "g")
    assert choose(real, gold, True) is gold
    assert choose(real, gold, False) is real
    assert choose(real, None, True) is real
    assert choose(None, gold, True) is None
