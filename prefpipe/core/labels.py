"""The five-point preference scale every stage speaks.

Labels are stored as their text form ("A>>B" ... "B>>A") so a row read by a person or another
tool means the same thing. Algorithms work on ordinal codes: 0 = A>>B ... 4 = B>>A, so that the
natural order of the codes is the order of the scale and a distance between codes is meaningful
for ordinal agreement. A missing label (an unparsed verdict, a skipped item) is None / NaN, never
a tie.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prefpipe.errors import PrefpipeError

if TYPE_CHECKING:  # imported where used: the CLI reads the scale for its choices at every start
    import numpy as np
    import pandas as pd

SCALE: Final[tuple[str, ...]] = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
"""The scale in ordinal order: strongly prefers A first, strongly prefers B last."""

CODE: Final[dict[str, int]] = {label: code for code, label in enumerate(SCALE)}
TIE: Final[str] = "A=B"

DIRECTION: Final[dict[str, str]] = {"A>>B": "A", "A>B": "A", "A=B": "=", "B>A": "B", "B>>A": "B"}
"""Directional view: the two A-labels are one, the two B-labels are one."""

SWAP: Final[dict[str, str]] = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}
"""The same judgement seen with the two responses exchanged."""

STRENGTH: Final[dict[str, int]] = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": 1, "B>>A": 2}


class LabelError(PrefpipeError, ValueError):
    """A label outside the five-point scale."""


def to_codes(labels: pd.Series | np.ndarray | list, *, field: str = "label") -> np.ndarray:
    """Map labels to ordinal codes 0..4 (float, NaN where missing).

    Raises LabelError naming the first offending value when a present label is not on the scale.
    """
    import numpy as np
    import pandas as pd

    series = pd.Series(labels, dtype="object")
    codes = series.map(CODE)
    bad = series.notna() & codes.isna()
    if bad.any():
        first = series[bad].iloc[0]
        raise LabelError(
            f"{field}: {first!r} is not on the scale {', '.join(SCALE)} "
            f"({int(bad.sum())} such value(s), first at position {int(np.flatnonzero(bad.to_numpy())[0])})"
        )
    return codes.to_numpy(dtype="float64")


def swap(labels: pd.Series) -> pd.Series:
    """Express labels with A and B exchanged (missing stays missing)."""
    return labels.map(SWAP).astype("object").where(labels.notna(), None)


def direction(labels: pd.Series) -> pd.Series:
    """'A', 'B' or '=' per label (missing stays missing)."""
    return labels.map(DIRECTION).astype("object").where(labels.notna(), None)
