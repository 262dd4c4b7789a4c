"""Strict verdict parsing: exactly one VERDICT line with a value on the scale, or no label."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefpipe.judge.verdict import parse_score, parse_verdict, span_probability


@pytest.mark.parametrize(
    "text, label",
    [
        ("A is clearer.\nVERDICT: A>B", "A>B"),
        ("reasoning\n\n**VERDICT: B>>A**", "B>>A"),
        ("reasoning\nVerdict: `A=B`.", "A=B"),
        ("VERDICT:B>A\n", "B>A"),
    ],
)
def test_well_formed_verdicts(text: str, label: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.value == label and parsed.problem is None
    assert text[parsed.span[0] : parsed.span[1]] == label


@pytest.mark.parametrize(
    "text, problem",
    [
        ("A is better, clearly.", "no VERDICT line"),
        ("I'm sorry, I can't help with that.", "refusal"),
        ("VERDICT: A>B\nOn reflection:\nVERDICT: B>A", "2 VERDICT lines"),
        ("VERDICT: A>B\nVERDICT: A>B", "2 VERDICT lines"),
        ("VERDICT: A is better", "not one of"),
        ("VERDICT: A>B or A=B", "not one of"),
        ("VERDICT: tie", "not one of"),
        ("", "empty answer"),
        (None, "empty answer"),
        ("The VERDICT: A>B line comes last", "no VERDICT line"),
    ],
)
def test_anything_else_has_no_label_and_never_a_tie(text: str | None, problem: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.value is None
    assert problem in (parsed.problem or "")


def test_scores_are_whole_numbers_in_range() -> None:
    assert parse_score("good\nSCORE: 7").value == "7"
    assert parse_score("SCORE: 11").value is None
    assert parse_score("SCORE: 7.5").value is None
    assert parse_score("no score").problem == "no SCORE line"


def test_span_probability_sums_the_verdict_tokens() -> None:
    tokens = ["Fine", ".\n", "VERDICT", ":", " A", ">>", "B"]
    logprobs = [-0.01, -0.01, -0.01, -0.01, math.log(0.8), math.log(0.9), 0.0]
    text = "".join(tokens)
    ends = np.cumsum([len(t) for t in tokens])
    parsed = parse_verdict(text)
    assert span_probability(text, ends, np.array(logprobs), parsed.span) == pytest.approx(0.72)
    # tokens that do not spell the answer: we cannot tell which are the verdict
    assert span_probability(text, ends[:-1], np.array(logprobs[:-1]), parsed.span) is None
    assert span_probability(text, None, None, parsed.span) is None
