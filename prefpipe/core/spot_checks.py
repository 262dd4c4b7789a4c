"""Spot checks: a random sample of the accepted AI labels that people label anyway. Where people
disagree with the AI the pair goes to an expert, and the disagreement rate is the honest estimate
of the error in the accepted labels that nobody checked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import labels as lab
from prefpipe.core import pair_codes, schemas
from prefpipe.core.routing import SPOT_CHECK, SPOT_CHECK_DISAGREES

_DIRECTIONS: tuple[str, ...] = ("=", "A", "B")
_DIRECTION_OF_CODE = np.array([_DIRECTIONS.index(lab.DIRECTION[label]) for label in lab.SCALE])
"""Label code 0..4 -> index into _DIRECTIONS (a strict majority has one winner, whatever the order)."""


def _people_direction(human_annotations: pd.DataFrame, pair_ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of `pair_ids`: the majority direction of the annotators' (non-expert, non-gold)
    labels, or "split" when no direction has a strict majority, and how many labels it rests on
    (0: nobody labelled it). Every kept label is checked against the scale; a million annotations
    are narrowed to the asked pairs in Arrow (a small hash set) and counted on integer codes, where
    a pandas groupby over every pair's ids took seconds."""
    schemas.require_columns(human_annotations, ("pair_id", "label"), "human_annotations")
    keep = human_annotations["label"].notna().to_numpy(dtype=bool)
    if "role" in human_annotations.columns:
        keep &= (human_annotations["role"].fillna("annotator") != "expert").to_numpy(dtype=bool, na_value=False)
    if "is_gold" in human_annotations.columns:
        keep &= ~human_annotations["is_gold"].fillna(False).astype(bool).to_numpy(dtype=bool)
    h = human_annotations[keep]
    pair_codes.check_labels(h["label"], field="human_annotations.label")
    ids = pair_codes.id_array(h["pair_id"])
    among = pc.is_in(ids, value_set=pair_ids).to_numpy(zero_copy_only=False)
    h, ids = h[among], ids.filter(pa.array(among))
    asked, codes = pair_codes.encode(pair_ids, ids)
    n_asked = int(asked.max(initial=-1)) + 1  # codes below it are the asked pairs' (they were encoded first)
    ours = (codes >= 0) & (codes < n_asked)
    direction = _DIRECTION_OF_CODE[pair_codes.label_codes(pair_codes.text_array(h["label"]))[ours]]
    k = len(_DIRECTIONS)
    counts = np.bincount(codes[ours] * k + direction, minlength=n_asked * k).reshape(n_asked, k)[asked]
    n = counts.sum(axis=1)
    choice = np.where(counts.max(axis=1) * 2 > n, counts.argmax(axis=1), k)
    return np.asarray(_DIRECTIONS + ("split",), dtype=object)[choice], n


def _spot_check_comparison(routing: pd.DataFrame, human_annotations: pd.DataFrame) -> pd.DataFrame:
    schemas.require_columns(routing, tuple(c for c in schemas.ROUTING if c != "labels_wanted"), "routing")
    # a spot check the people disagreed with was escalated (route "expert"): it is still in the sample
    reason, route = pair_codes.text_array(routing["reason"]), pair_codes.text_array(routing["route"])
    sampled = pc.or_kleene(pc.or_kleene(pc.equal(reason, SPOT_CHECK), pc.equal(route, "spot_check")), pc.starts_with(reason, SPOT_CHECK_DISAGREES))
    spots = routing[pc.fill_null(sampled, False).to_numpy(zero_copy_only=False)].reset_index(drop=True)
    ids = pair_codes.id_array(spots["pair_id"])
    people, n_people = _people_direction(human_annotations, ids)
    labelled = n_people > 0  # the spot checks people labelled (an inner join with their directions)
    merged = spots.assign(pair_id=pair_codes.text_series(ids))[labelled].reset_index(drop=True)
    merged["people"], merged["n_people"] = people[labelled], n_people[labelled]
    merged["ai_dir"] = lab.direction(merged["ai_label"].astype("object")).to_numpy()
    merged["disagrees"] = merged["people"] != merged["ai_dir"]
    return merged


def _wanted(spots: pd.DataFrame) -> np.ndarray:
    """People's labels each spot check needs before it is compared (routing's labels_wanted; one
    where a routing frame does not record it)."""
    if "labels_wanted" not in spots.columns:
        return np.ones(len(spots), dtype="int64")
    return spots["labels_wanted"].astype("Int64").fillna(1).to_numpy(dtype="int64")


def escalate_spot_checks(routing: pd.DataFrame, human_annotations: pd.DataFrame) -> pd.DataFrame:
    """ROUTING rows (route "expert") for spot checks where the people disagree with the AI, once
    a spot check has all the labels it wants (routing's labels_wanted): a first label that
    disagrees waits for the others, as the pair's final label does.

    Disagreement is directional: the annotators' majority direction (A, B or tie; the two A labels
    are one, the two B labels are one) differs from the AI label's direction, or the annotators
    are split with no majority. A>>B against A>B is agreement: strength is not worth an expert.
    """
    merged = _spot_check_comparison(routing, human_annotations)
    complete = merged["n_people"].to_numpy() >= _wanted(merged)
    out = merged[merged["disagrees"].to_numpy(dtype=bool) & complete].copy()
    reasons = [
        f"{SPOT_CHECK_DISAGREES}: AI {a} ({d}) vs people {p} ({n} label(s))"
        for a, d, p, n in zip(out["ai_label"], out["ai_dir"], out["people"], out["n_people"], strict=True)
    ]
    out["route"] = pair_codes.text_series(pair_codes.constant("expert", len(out)), out.index)
    out["labels_wanted"] = pd.array(np.ones(len(out), dtype="int64"), dtype="Int64")
    out["reason"] = pair_codes.text_series(pa.array(reasons, pa.large_string()), out.index)
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
