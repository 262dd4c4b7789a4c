"""Hybrid routing: whether an AI label stands or a person looks, and which pairs people see first.

Rules (DESIGN.md, all asset config in RoutingConfig):
- an AI label stands ("accepted") when it is usable, consistent in both orders and its confidence
  is at least `accept_confidence` (0.75);
- a seeded random `spot_check_rate` (5%) of accepted pairs also go to a person ("spot_check"); the
  share of those where the person disagrees is the honest estimate of the error in the accepted
  labels that nobody checked;
- unparsed, failed, position-inconsistent, unlabelled and low-confidence pairs go to people
  ("human"), each with its reason;
- a spot check where the people disagree with the AI goes to an expert ("expert"); the expert's
  answer is final.
- With a human budget (maximum human labels for the batch), spot checks are served first (they
  are the audit), and when more pairs need people than the rest of the budget allows, active
  learning (prefpipe.learning.active) chooses which; the others are routed "over_budget": their AI
  label stands if they have one, otherwise they get no label at all.

Every function is pure over DataFrames; the routing, human_queue and final_labels assets call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from prefpipe import labels as lab
from prefpipe import schemas
from prefpipe.learning import active

ROUTES: Final[tuple[str, ...]] = ("accepted", "spot_check", "human", "expert", "over_budget")
AI_STATUSES: Final[tuple[str, ...]] = ("ok", "unparsed", "inconsistent", "failed")

# reasons, one per rule, so counts per reason are meaningful
CONFIDENT: Final = "confident"
SPOT_CHECK: Final = "random_spot_check"
SPOT_CHECK_OVER_BUDGET: Final = "confident; spot check over budget"
LOW_CONFIDENCE: Final = "low_confidence"
UNPARSED: Final = "unparsed"
FAILED: Final = "judge_failed"
INCONSISTENT: Final = "position_inconsistent"
NO_LABEL: Final = "no_label"
NO_CONFIDENCE: Final = "no_confidence"
NO_AI_LABEL: Final = "no_ai_label"
SPOT_CHECK_DISAGREES: Final = "spot_check_disagreement"


@dataclass(frozen=True)
class RoutingConfig:
    """Routing rules. `human_budget` counts human labels (pairs x labels_per_pair), None = no cap;
    `budget_strategy` is the active-learning strategy that spends it."""

    accept_confidence: float = 0.75
    spot_check_rate: float = 0.05
    seed: int = 0
    require_consistent: bool = True
    human_budget: int | None = None
    labels_per_pair: int = 1
    budget_strategy: str = active.DEFAULT_STRATEGY

    def __post_init__(self) -> None:
        if not 0.0 <= self.accept_confidence <= 1.0:
            raise ValueError(f"accept_confidence must be in [0, 1], got {self.accept_confidence}")
        if not 0.0 <= self.spot_check_rate <= 1.0:
            raise ValueError(f"spot_check_rate must be in [0, 1], got {self.spot_check_rate}")
        if self.human_budget is not None and self.human_budget < 0:
            raise ValueError(f"human_budget must be >= 0 or None, got {self.human_budget}")
        if self.labels_per_pair < 1:
            raise ValueError(f"labels_per_pair must be >= 1, got {self.labels_per_pair}")
        if self.budget_strategy not in active.STRATEGIES:
            raise ValueError(f"budget_strategy {self.budget_strategy!r} is not one of {', '.join(active.STRATEGIES)}")


def _unique_pairs(df: pd.DataFrame, name: str) -> None:
    dup = df["pair_id"].duplicated(keep=False)
    if dup.any():
        ids = df.loc[dup, "pair_id"].astype(str).unique()
        raise ValueError(
            f"{name}: {len(ids)} pair_id(s) appear more than once (expected one row per pair for the "
            f"primary judge), e.g. {', '.join(ids[:5])}"
        )


def spot_check_sample(pair_ids: pd.Series, rate: float, seed: int) -> np.ndarray:
    """Boolean mask choosing round(rate * n) of the pairs (at least one when rate > 0), by a keyed
    hash of the pair id: the same seed picks the same pairs whatever the row order."""
    n = len(pair_ids)
    if n == 0 or rate <= 0:
        return np.zeros(n, dtype=bool)
    k = min(n, max(1, int(round(rate * n))))
    key = f"prefpipe{seed:08d}"[-16:].rjust(16, "0")
    h = pd.util.hash_pandas_object(pd.Series(pair_ids, dtype="object").astype(str), index=False, hash_key=key).to_numpy()
    mask = np.zeros(n, dtype=bool)
    mask[np.argsort(h, kind="stable")[:k]] = True
    return mask


def route_pairs(
    ai_labels: pd.DataFrame,
    config: RoutingConfig = RoutingConfig(),
    *,
    pairs: pd.DataFrame | None = None,
    reward_model=None,
) -> pd.DataFrame:
    """ROUTING rows (pair_id, route, reason, ai_label, ai_confidence, ai_status), one per pair.

    ai_labels: AI_LABELS columns, one row per pair (the primary judge).
    pairs: optional RESPONSE_PAIRS-like frame (pair_id, prompt, response_a, response_b); pairs in
    it with no AI label are routed to people ("no_ai_label"), dropped pairs are ignored, and its
    texts let diversity/hybrid selection spend a human budget.
    reward_model: optional fitted RewardModel whose score gaps drive uncertainty under a budget;
    without one the judge's own confidence is the uncertainty (1 - confidence).
    """
    schemas.require_columns(ai_labels, ("pair_id", "label", "status", "confidence"), "ai_labels")
    _unique_pairs(ai_labels, "ai_labels")
    status = ai_labels["status"].astype("object")
    bad = ~status.isin(AI_STATUSES)
    if bad.any():
        raise ValueError(
            f"ai_labels.status: {status[bad].iloc[0]!r} (pair {ai_labels['pair_id'][bad].iloc[0]}) is not one of "
            f"{', '.join(AI_STATUSES)}"
        )
    lab.to_codes(ai_labels["label"], field="ai_labels.label")
    frame = pd.DataFrame(
        {
            "pair_id": ai_labels["pair_id"].astype(str).to_numpy(),
            "ai_label": ai_labels["label"].astype("object").where(ai_labels["label"].notna(), None).to_numpy(),
            "ai_confidence": pd.to_numeric(ai_labels["confidence"], errors="raise").astype("float64").to_numpy(),
            "ai_status": status.to_numpy(),
        }
    )
    texts = None
    if pairs is not None:
        schemas.require_columns(pairs, ("pair_id",), "pairs")
        live = pairs[~pairs["dropped"].fillna(False).astype(bool)] if "dropped" in pairs.columns else pairs
        _unique_pairs(live, "pairs")
        live_ids = live["pair_id"].astype(str)
        unknown = ~frame["pair_id"].isin(live_ids.to_numpy())
        if unknown.any():
            raise ValueError(
                f"ai_labels: {int(unknown.sum())} pair_id(s) are not among the (undropped) pairs, "
                f"e.g. {', '.join(frame.loc[unknown, 'pair_id'].head(5))}"
            )
        missing = live_ids[~live_ids.isin(frame["pair_id"].to_numpy())]
        if len(missing):
            extra = pd.DataFrame(
                {"pair_id": missing.to_numpy(), "ai_label": None, "ai_confidence": np.nan, "ai_status": None}
            )
            frame = pd.concat([frame, extra], ignore_index=True)
        if {"prompt", "response_a", "response_b"} <= set(live.columns):
            texts = live.assign(pair_id=live_ids).set_index("pair_id").loc[frame["pair_id"]]

    has_label = frame["ai_label"].notna().to_numpy()
    conf = frame["ai_confidence"].to_numpy()
    no_ai = frame["ai_status"].isna().to_numpy()
    st = frame["ai_status"].fillna("").astype(str).to_numpy()
    consistent_ok = (st == "ok") | ((not config.require_consistent) & (st == "inconsistent") & has_label)
    conditions = [
        no_ai,
        st == "failed",
        st == "unparsed",
        (st == "inconsistent") & ~consistent_ok,
        ~has_label,
        np.isnan(conf),
        conf < config.accept_confidence,
    ]
    reasons = [NO_AI_LABEL, FAILED, UNPARSED, INCONSISTENT, NO_LABEL, NO_CONFIDENCE, LOW_CONFIDENCE]
    reason = np.select(conditions, reasons, default=CONFIDENT).astype(object)
    route = np.where(reason == CONFIDENT, "accepted", "human").astype(object)

    accepted = np.flatnonzero(route == "accepted")
    spot = accepted[spot_check_sample(frame["pair_id"].iloc[accepted], config.spot_check_rate, config.seed)]
    route[spot], reason[spot] = "spot_check", SPOT_CHECK

    if config.human_budget is not None:
        _apply_budget(frame, route, reason, config, texts, reward_model)
    frame["route"], frame["reason"] = route, reason
    return schemas.conform(frame, schemas.ROUTING, name="routing")


def _apply_budget(frame, route, reason, config: RoutingConfig, texts, reward_model) -> None:
    capacity = int(config.human_budget) // config.labels_per_pair
    spot = np.flatnonzero(route == "spot_check")
    if len(spot) > capacity:
        keep = np.zeros(len(spot), dtype=bool)
        if capacity:
            keep = spot_check_sample(frame["pair_id"].iloc[spot], capacity / len(spot), config.seed)
        drop = spot[~keep]
        route[drop], reason[drop] = "accepted", SPOT_CHECK_OVER_BUDGET
        spot = spot[keep]
    room = capacity - len(spot)
    need = np.flatnonzero(route == "human")
    if len(need) <= room:
        return
    strategy = config.budget_strategy
    if strategy in ("diversity", "hybrid") and texts is None:
        strategy = "uncertainty"  # no pair texts, no embeddings: the judge's confidence still ranks
    gap = None
    if strategy in ("uncertainty", "hybrid"):
        if reward_model is not None and texts is not None:
            sub = texts.iloc[need]
            gap = reward_model.gap(sub["prompt"].tolist(), sub["response_a"].tolist(), sub["response_b"].tolist())
        else:
            gap = gap_from_confidence(frame["ai_confidence"].to_numpy()[need])
    embedding = None
    if strategy in ("diversity", "hybrid"):
        from prefpipe.learning.features import prompt_embeddings

        embedding = prompt_embeddings(texts.iloc[need]["prompt"].tolist(), seed=config.seed)
    chosen = active.select(active.Candidates(gap=gap, embedding=embedding), room, strategy, seed=config.seed)
    left_out = np.ones(len(need), dtype=bool)
    left_out[chosen] = False
    out = need[left_out]
    basis = "reward model" if reward_model is not None and texts is not None else "judge confidence"
    label = f"over_budget ({strategy}, {basis})" if strategy in ("uncertainty", "hybrid") else f"over_budget ({strategy})"
    route[out] = "over_budget"
    reason[out] = (label + ": " + pd.Series(reason[out], dtype="object")).to_numpy()


def gap_from_confidence(confidence: np.ndarray) -> np.ndarray:
    """A score gap whose uncertainty (active.uncertainty_from_gap) is 1 - confidence, so the
    judge's own confidence can rank pairs when no reward model is at hand. No confidence (no
    label) is the most uncertain of all."""
    c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0 - 1e-12)
    return np.where(np.isnan(c), 0.0, 2.0 * np.arctanh(c))


def route_counts(routing: pd.DataFrame) -> dict[str, int]:
    """Pairs per route (every route named, zero included), for asset metadata."""
    counts = routing["route"].value_counts()
    return {r: int(counts.get(r, 0)) for r in ROUTES}


def build_human_queue(routing: pd.DataFrame, config: RoutingConfig = RoutingConfig()) -> pd.DataFrame:
    """HUMAN_QUEUE rows for every pair a person should (or, over budget, would) see.

    Priority: expert escalations first (3), then spot checks (2), then pairs routed to people
    (1 + uncertainty, the least confident first), then over-budget pairs (uncertainty, not
    enqueued). Experts give one label; everyone else `labels_per_pair`.
    """
    schemas.require_columns(routing, ("pair_id", "route", "reason", "ai_confidence"), "routing")
    q = routing[routing["route"].isin(["expert", "spot_check", "human", "over_budget"])].copy()
    u = 1.0 - q["ai_confidence"].astype("float64").fillna(0.0).to_numpy()
    base = q["route"].map({"expert": 3.0, "spot_check": 2.0, "human": 1.0, "over_budget": 0.0}).to_numpy()
    q["priority"] = np.where(q["route"].isin(["human", "over_budget"]), base + u, base)
    q["labels_wanted"] = np.where(q["route"] == "expert", 1, config.labels_per_pair)
    q["enqueued"] = q["route"] != "over_budget"
    q = q.sort_values(["priority", "pair_id"], ascending=[False, True], kind="stable")
    return schemas.conform(q, schemas.HUMAN_QUEUE, name="human_queue")


# ----------------------------------------------------------------------------------------------
# spot checks


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


# ----------------------------------------------------------------------------------------------
# final labels


def _joined_versions(df: pd.DataFrame) -> pd.Series:
    """pair_id -> the distinct guideline versions of its rows, sorted and "+"-joined."""
    if "guideline_version" not in df.columns or df.empty:
        return pd.Series(dtype="object")
    v = df[["pair_id", "guideline_version"]].dropna()
    return v.groupby("pair_id")["guideline_version"].agg(lambda s: "+".join(sorted(set(map(str, s)))))


def combine_final_labels(
    routing: pd.DataFrame,
    ai_labels: pd.DataFrame | None,
    human_final: pd.DataFrame,
    expert_annotations: pd.DataFrame,
    *,
    human_annotations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """FINAL_LABELS rows: an expert's answer is final; else the people's aggregate where people
    labelled; else the AI label where it stands (accepted, a spot check not yet labelled, or over
    budget). A pair with none of these gets no row: nothing is invented.

    human_final: one row per pair (pair_id, label, confidence, n_labels, method) from the quality
    library's aggregators. expert_annotations: HUMAN_ANNOTATIONS rows (role "expert" kept; with
    several, the latest created_at wins and confidence is the share of experts who agree).
    ai_labels: AI_LABELS rows; when None the AI label and confidence recorded in routing are used.
    guideline_version: the version(s) the deciding labels were made under, "+"-joined: the
    experts' for expert rows; human_final's own column if it has one, else the annotators' labels
    in `human_annotations` for human rows; ai_labels' for AI rows. Null when not known.
    """
    schemas.require_columns(routing, ("pair_id", "route", "ai_label", "ai_confidence"), "routing")
    schemas.require_columns(human_final, ("pair_id", "label", "confidence", "n_labels", "method"), "human_final")
    schemas.require_columns(expert_annotations, ("pair_id", "label"), "expert_annotations")
    routing = routing.assign(pair_id=routing["pair_id"].astype(str))
    _unique_pairs(routing, "routing")
    batch = routing["pair_id"].to_numpy()

    ex = expert_annotations[expert_annotations["label"].notna()]
    if "role" in ex.columns:
        ex = ex[ex["role"] == "expert"]
    ex = ex.assign(pair_id=ex["pair_id"].astype(str))
    ex = ex[ex["pair_id"].isin(batch)]
    lab.to_codes(ex["label"], field="expert_annotations.label")
    if "created_at" in ex.columns:
        ex = ex.sort_values("created_at", kind="stable")
    latest = ex.groupby("pair_id", sort=False).tail(1).set_index("pair_id")["label"]
    agree = ex["label"].to_numpy() == ex["pair_id"].map(latest).to_numpy()
    expert = pd.DataFrame({"pair_id": ex["pair_id"].to_numpy(), "agree": agree}).groupby("pair_id").agg(
        confidence=("agree", "mean"), n_labels=("agree", "size")
    )
    expert = expert.assign(
        label=latest.reindex(expert.index), method="expert", source="expert",
        guideline_version=_joined_versions(ex).reindex(expert.index),
    ).reset_index()

    hf = human_final[human_final["label"].notna()].assign(pair_id=lambda d: d["pair_id"].astype(str))
    hf = hf[hf["pair_id"].isin(batch) & ~hf["pair_id"].isin(expert["pair_id"].to_numpy())]
    _unique_pairs(hf, "human_final")
    lab.to_codes(hf["label"], field="human_final.label")
    human = hf[["pair_id", "label", "confidence", "n_labels", "method"]].assign(source="human")
    if "guideline_version" in hf.columns:
        human["guideline_version"] = hf["guideline_version"].to_numpy()
    elif human_annotations is not None:
        schemas.require_columns(human_annotations, ("pair_id", "label"), "human_annotations")
        people = human_annotations[human_annotations["label"].notna()]
        if "role" in people.columns:
            people = people[people["role"] != "expert"]
        people = people.assign(pair_id=people["pair_id"].astype(str))
        human["guideline_version"] = human["pair_id"].map(_joined_versions(people)).to_numpy()
    else:
        human["guideline_version"] = None

    if ai_labels is not None:
        schemas.require_columns(ai_labels, ("pair_id", "label", "confidence"), "ai_labels")
        ai_src = ai_labels.assign(pair_id=ai_labels["pair_id"].astype(str)).set_index("pair_id")
        ai_label = routing["pair_id"].map(ai_src["label"])
        ai_conf = routing["pair_id"].map(ai_src["confidence"])
        ai_version = (
            routing["pair_id"].map(ai_src["guideline_version"]) if "guideline_version" in ai_src.columns
            else pd.Series(None, index=routing.index, dtype="object")
        )
    else:
        ai_label, ai_conf = routing["ai_label"], routing["ai_confidence"]
        ai_version = pd.Series(None, index=routing.index, dtype="object")
    stands = routing["route"].isin(["accepted", "spot_check", "over_budget"]) & ai_label.notna()
    taken = np.concatenate([expert["pair_id"].to_numpy(dtype=object), human["pair_id"].to_numpy(dtype=object)])
    stands &= ~routing["pair_id"].isin(taken)
    ai = pd.DataFrame(
        {
            "pair_id": routing.loc[stands, "pair_id"],
            "label": ai_label[stands],
            "confidence": ai_conf[stands].astype("float64"),
            "n_labels": 1,
            "method": "ai",
            "source": "ai",
            "guideline_version": ai_version[stands],
        }
    )
    # typed before the concat: all-missing object columns make pandas inspect every value
    parts = [part.astype({"guideline_version": "string", "label": "string", "pair_id": "string"}) for part in (expert, human, ai)]
    out = pd.concat(parts, ignore_index=True)
    out = out.assign(_o=pd.Index(routing["pair_id"]).get_indexer(out["pair_id"])).sort_values("_o", kind="stable")
    return schemas.conform(out, schemas.FINAL_LABELS, name="final_labels")
