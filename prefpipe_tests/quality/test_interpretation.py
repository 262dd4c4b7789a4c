"""DESIGN.md's interpretation bands."""

from __future__ import annotations

import math

import pytest

from prefpipe.quality import band, interpret


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "almost perfect"), (0.81, "almost perfect"), (0.805, "substantial"), (0.61, "substantial"),
        (0.6, "moderate"), (0.41, "moderate"), (0.40, "fair"), (0.21, "fair"), (0.2, "slight"), (0.0, "slight"),
        (-0.01, "poor"), (math.nan, "undefined"),
    ],
)
def test_bands(value: float, expected: str) -> None:
    assert band(value) == expected


def test_meanings_follow_design() -> None:
    assert interpret(0.9)[1] == "ready for training"
    assert interpret(0.7)[1] == "usable with majority voting"
    assert interpret(0.5)[1] == "revise the guidelines"
    assert interpret(0.3)[1] == "the task may be too subjective"
    assert interpret(0.1)[1] == "the task is broken"
