"""Hidden gold questions: when to serve one, whether an answer is right, when to flag.

Gold is served at a rate of about one task in `block` (10 by default): each annotator's stream of
served tasks is cut into blocks of `block` tasks and one position in each block, drawn from a keyed
hash the client cannot predict, is a gold slot. That gives random positions and a guaranteed rate,
so a random clicker meets 5 gold questions within about 50 tasks and 2 within 20.

A flag is applied to the data at once (every label of a flagged annotator is left out from the
answer that flagged them), but with `flag_delay` N the annotator is told, and paused, only N
answers later: a flag shown the moment it happens tells a careless or colluding annotator that the
answer they just gave was a wrong gold answer.

A gold answer is right when it points the same way as the gold label (A-side, tie or B-side): the
five-point scale's strength (A>>B vs A>B) is a matter of judgement that honest annotators split
on, and flagging them for it would punish the careful. `match="exact"` is there for teams that
want it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prefpipe.annotate.tokens import keyed_number
from prefpipe.core.labels import DIRECTION


@dataclass(frozen=True)
class GoldPolicy:
    rate: float = 0.10
    """Share of served tasks that are gold (one slot per block of round(1/rate) tasks)."""
    min_answers: int = 5
    """Flag only once an annotator has answered at least this many gold questions..."""
    min_accuracy: float = 0.60
    """...and is right on fewer than this share of them."""
    match: Literal["direction", "exact"] = "direction"
    flag_delay: int = 0
    """Answers between the flag point and the annotator being told and paused (0: at once)."""

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise ValueError(f"GoldPolicy.rate: {self.rate!r} must be in (0, 1]")
        if self.min_answers < 1:
            raise ValueError(f"GoldPolicy.min_answers: {self.min_answers!r} must be at least 1")
        if not 0 <= self.min_accuracy <= 1:
            raise ValueError(f"GoldPolicy.min_accuracy: {self.min_accuracy!r} must be in [0, 1]")
        if self.match not in ("direction", "exact"):
            raise ValueError(f"GoldPolicy.match: {self.match!r} must be 'direction' or 'exact'")
        if self.flag_delay < 0:
            raise ValueError(f"GoldPolicy.flag_delay: {self.flag_delay!r} must be at least 0")

    @property
    def block(self) -> int:
        return max(1, round(1 / self.rate))

    @classmethod
    def from_thresholds(cls, thresholds: dict[str, float]) -> GoldPolicy:
        """Read gold_rate, gold_min_answers, gold_min_accuracy and gold_flag_delay_answers from the
        rubric's thresholds."""
        default = cls()
        return cls(
            rate=float(thresholds.get("gold_rate", default.rate)),
            min_answers=int(thresholds.get("gold_min_answers", default.min_answers)),
            min_accuracy=float(thresholds.get("gold_min_accuracy", default.min_accuracy)),
            flag_delay=int(thresholds.get("gold_flag_delay_answers", default.flag_delay)),
        )


def is_correct(label: str, gold_label: str, policy: GoldPolicy) -> bool:
    """Both labels in the pair's own order."""
    if policy.match == "exact":
        return label == gold_label
    return DIRECTION[label] == DIRECTION[gold_label]


def flag_reason(answers: int, correct: int, policy: GoldPolicy) -> str | None:
    """Why the annotator must be flagged now, or None while they are fine."""
    if answers < policy.min_answers:
        return None
    accuracy = correct / answers
    if accuracy >= policy.min_accuracy:
        return None
    return (
        f"gold accuracy {accuracy:.0%} ({correct} of {answers} gold answers right, "
        f"{policy.match} match) is under {policy.min_accuracy:.0%}"
    )


def gold_slot(secret: bytes, annotator_id: int, block_index: int, block: int) -> int:
    """The position (0..block-1) of the gold task inside one block of an annotator's stream."""
    return keyed_number(secret, f"{annotator_id}:{block_index}") % block


def is_gold_turn(secret: bytes, annotator_id: int, n_served: int, policy: GoldPolicy) -> bool:
    """Whether the annotator's next task (their n_served-th, from 0) is a gold slot."""
    block = policy.block
    return n_served % block == gold_slot(secret, annotator_id, n_served // block, block)
