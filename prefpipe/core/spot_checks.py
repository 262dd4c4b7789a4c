"""Spot checks: a random sample of the accepted AI labels that people label anyway. Where people
disagree with the AI the pair goes to an expert, and the disagreement rate is the honest estimate
of the error in the accepted labels that nobody checked."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from prefpipe.core import labels as lab
from prefpipe.core import schemas
from prefpipe.core.routing import SPOT_CHECK, SPOT_CHECK_DISAGREES

def _people_direction(human_annotations: pd.DataFrame) -> pd.DataFrame:
    """Per pair: the majority direction of the annotators' (non-expert, non-gold) labels, or
    "split" when no direction has a strict majority, and how many labels it rests on."""
    schemas.require_columns(human_annotations, ("pair_id", "label"), "human_annotations")
    h = human_annotations[human_annotations["label"].notna()]
    if "role" in h.columns:
        h = h[h["role"].fillna("annotator") != "expert"]
    if "is_gold" in h.columns:
        h = h[~h["is_gold"].fillna(False).astype(bool)]
    lab.to_codes(h["label"], field="human_annotations.label")
    d = pd.DataFrame({"pair_id": h["pair_id"].astype(str).to_numpy(), "dir": lab.direction(h["label"]).to_numpy()})
    counts = d.groupby(["pair_id", "dir"]).size().unstack(fill_value=0)
    n = counts.sum(axis=1)
    top = counts.max(axis=1)
    winner = counts.idxmax(axis=1).where(top * 2 > n, "split")
    return pd.DataFrame({"people": winner, "n_people": n}).reset_index()


def _spot_check_comparison(routing: pd.DataFrame, human_annotations: pd.DataFrame) -> pd.DataFrame:
    schemas.require_columns(routing, tuple(schemas.ROUTING), "routing")
    # a spot check the people disagreed with was escalated (route "expert"): it is still in the sample
    escalated = routing["reason"].astype("string").str.startswith(SPOT_CHECK_DISAGREES).fillna(False)
    spots = routing[(routing["reason"] == SPOT_CHECK) | (routing["route"] == "spot_check") | escalated].copy()
    spots["pair_id"] = spots["pair_id"].astype(str)
    people = _people_direction(human_annotations)
    merged = spots.merge(people, on="pair_id", how="inner")
    merged["ai_dir"] = lab.direction(merged["ai_label"].astype("object")).to_numpy()
    merged["disagrees"] = merged["people"] != merged["ai_dir"]
    return merged


def escalate_spot_checks(routing: pd.DataFrame, human_annotations: pd.DataFrame) -> pd.DataFrame:
    """ROUTING rows (route "expert") for spot checks where the people disagree with the AI.

    Disagreement is directional: the annotators' majority direction (A, B or tie; the two A labels
    are one, the two B labels are one) differs from the AI label's direction, or the annotators
    are split with no majority. A>>B against A>B is agreement: strength is not worth an expert.
    """
    merged = _spot_check_comparison(routing, human_annotations)
    out = merged[merged["disagrees"]].copy()
    out["route"] = "expert"
    out["reason"] = [
        f"{SPOT_CHECK_DISAGREES}: AI {a} ({d}) vs people {p} ({n} label(s))"
        for a, d, p, n in zip(out["ai_label"], out["ai_dir"], out["people"], out["n_people"], strict=True)
    ]
    return schemas.conform(out, schemas.ROUTING, name="expert_queue")


@dataclass(frozen=True)
class SpotCheckEstimate:
    n_checked: int
    n_disagree: int
    rate: float
    ci_low: float
    ci_high: float
    confidence_level: float

    @property
    def statement(self) -> str:
        if self.n_checked == 0:
            return "No spot check has been labelled yet: the error in unchecked AI labels is unknown."
        pct = self.confidence_level * 100
        return (
            f"People disagreed with the AI on {self.n_disagree} of {self.n_checked} spot checks "
            f"({self.rate:.1%}, {pct:.0f}% Wilson interval {self.ci_low:.1%}-{self.ci_high:.1%}). Spot checks are "
            "a random sample of the accepted AI labels, so this is the honest estimate of the error "
            "in the accepted labels that nobody checked."
        )


def spot_check_disagreement(
    routing: pd.DataFrame, human_annotations: pd.DataFrame, *, confidence_level: float = 0.95
) -> SpotCheckEstimate:
    """Directional disagreement rate on labelled spot checks with a Wilson score interval."""
    from scipy.stats import binomtest

    merged = _spot_check_comparison(routing, human_annotations)
    n, k = len(merged), int(merged["disagrees"].sum())
    if n == 0:
        return SpotCheckEstimate(0, 0, float("nan"), float("nan"), float("nan"), confidence_level)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence_level, method="wilson")
    return SpotCheckEstimate(n, k, k / n, float(ci.low), float(ci.high), confidence_level)
