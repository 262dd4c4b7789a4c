"""DESIGN.md's interpretation bands for chance-corrected agreement (kappa, alpha), so every figure
in a report says what it means for the batch.

Bands (lower bound inclusive, as DESIGN.md lists them; a value between two listed ranges, such as
0.805, belongs to the lower band):
  >= 0.81 almost perfect: ready for training
  >= 0.61 substantial: usable with majority voting
  >= 0.41 moderate: revise the guidelines
  >= 0.21 fair: the task may be too subjective
  >= 0.00 slight: the task is broken
   < 0.00 poor (below chance; DESIGN.md lists no band for it): the task is broken, or the labels
          are misaligned (for example A and B swapped for some annotators)
NaN is "undefined". Raw (not chance-corrected) agreement gets no band: a high raw agreement can
come from one label dominating.
"""

from __future__ import annotations

import math
from typing import Final

BANDS: Final[tuple[tuple[float, str, str], ...]] = (
    (0.81, "almost perfect", "ready for training"),
    (0.61, "substantial", "usable with majority voting"),
    (0.41, "moderate", "revise the guidelines"),
    (0.21, "fair", "the task may be too subjective"),
    (0.00, "slight", "the task is broken"),
    (-math.inf, "poor", "below chance: the task is broken, or labels are misaligned (A and B swapped?)"),
)

NOT_CHANCE_CORRECTED: Final = "raw agreement is not chance-corrected; read kappa or alpha for the band"


def band(value: float) -> str:
    """The band name for a kappa or alpha value ('undefined' for NaN)."""
    return interpret(value)[0]


def interpret(value: float) -> tuple[str, str]:
    """(band, what it means for the batch) for a chance-corrected agreement value."""
    if value is None or not math.isfinite(float(value)):
        return "undefined", "undefined for this batch"
    for lower, name, meaning in BANDS:
        if value >= lower:
            return name, meaning
    raise AssertionError("unreachable: the last band has no lower bound")
