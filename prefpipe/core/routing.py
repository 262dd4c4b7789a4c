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
- With a human budget (maximum human labels for the batch), prefpipe.learning.budget spends it:
  spot checks first (they are the audit), then what active learning chooses; the others are
  routed "over_budget": their AI label stands if they have one, otherwise they get no label.

Spot checks are in prefpipe.core.spot_checks and final-label combination in
prefpipe.core.final_labels. Every function is pure over DataFrames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import labels as lab
from prefpipe.core import schemas
from prefpipe.errors import PrefpipeError

ROUTES: Final[tuple[str, ...]] = ("accepted", "spot_check", "human", "expert", "over_budget")
AI_STATUSES: Final[tuple[str, ...]] = ("ok", "unparsed", "inconsistent", "failed")

# reasons, one per rule, so counts per reason are meaningful
CONFIDENT: Final = "confident"
SPOT_CHECK: Final = "random_spot_check"
SPOT_CHECK_OVER_BUDGET: Final = "confident; spot check over budget"

BUDGET_STRATEGIES: Final[tuple[str, ...]] = ("uncertainty", "diversity", "hybrid", "random")
"""How active learning (prefpipe.learning.active) may spend a human budget."""
DEFAULT_BUDGET_STRATEGY: Final[str] = "diversity"
"""Measured best on the HH-RLHF replay (prefpipe.learning.active.DEFAULT_STRATEGY says how)."""
LOW_CONFIDENCE: Final = "low_confidence"
UNPARSED: Final = "unparsed"
FAILED: Final = "judge_failed"
INCONSISTENT: Final = "position_inconsistent"
NO_LABEL: Final = "no_label"
NO_CONFIDENCE: Final = "no_confidence"
NO_AI_LABEL: Final = "no_ai_label"
SPOT_CHECK_DISAGREES: Final = "spot_check_disagreement"


class RoutingError(PrefpipeError, ValueError):
    """Routing input or settings that cannot be routed (the message names the field)."""


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
    budget_strategy: str = DEFAULT_BUDGET_STRATEGY

    def __post_init__(self) -> None:
        if not 0.0 <= self.accept_confidence <= 1.0:
            raise RoutingError(f"accept_confidence must be in [0, 1], got {self.accept_confidence}")
        if not 0.0 <= self.spot_check_rate <= 1.0:
            raise RoutingError(f"spot_check_rate must be in [0, 1], got {self.spot_check_rate}")
        if self.human_budget is not None and self.human_budget < 0:
            raise RoutingError(f"human_budget must be >= 0 or None, got {self.human_budget}")
        if self.labels_per_pair < 1:
            raise RoutingError(f"labels_per_pair must be >= 1, got {self.labels_per_pair}")
        if self.budget_strategy not in BUDGET_STRATEGIES:
            raise RoutingError(f"budget_strategy {self.budget_strategy!r} is not one of {', '.join(BUDGET_STRATEGIES)}")


def unique_pairs(df: pd.DataFrame, name: str) -> None:
    dup = df["pair_id"].duplicated(keep=False)
    if dup.any():
        ids = df.loc[dup, "pair_id"].astype(str).unique()
        raise RoutingError(
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
) -> pd.DataFrame:
    """ROUTING rows (pair_id, route, reason, ai_label, ai_confidence, ai_status), one per pair.

    ai_labels: AI_LABELS columns, one row per pair (the primary judge).
    pairs: optional RESPONSE_PAIRS-like frame (pair_id, prompt, response_a, response_b); pairs in
    it with no AI label are routed to people ("no_ai_label"), dropped pairs are ignored, and its
    texts let diversity/hybrid selection spend a human budget.
    The human budget (config.human_budget) is not spent here: prefpipe.learning.budget.route_pairs
    applies these rules and then lets active learning choose what people see.
    """
    schemas.require_columns(ai_labels, ("pair_id", "label", "status", "confidence"), "ai_labels")
    unique_pairs(ai_labels, "ai_labels")
    status = ai_labels["status"].astype("object")
    bad = ~status.isin(AI_STATUSES)
    if bad.any():
        raise RoutingError(
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
    if pairs is not None:
        schemas.require_columns(pairs, ("pair_id",), "pairs")
        live = pairs[~pairs["dropped"].fillna(False).astype(bool)] if "dropped" in pairs.columns else pairs
        unique_pairs(live, "pairs")
        live_ids = live["pair_id"].astype(str)
        unknown = ~frame["pair_id"].isin(live_ids.to_numpy())
        if unknown.any():
            raise RoutingError(
                f"ai_labels: {int(unknown.sum())} pair_id(s) are not among the (undropped) pairs, "
                f"e.g. {', '.join(frame.loc[unknown, 'pair_id'].head(5))}"
            )
        missing = live_ids[~live_ids.isin(frame["pair_id"].to_numpy())]
        if len(missing):
            extra = pd.DataFrame(
                {"pair_id": missing.to_numpy(), "ai_label": None, "ai_confidence": np.nan, "ai_status": None}
            )
            frame = pd.concat([frame, extra], ignore_index=True)

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

    frame["route"], frame["reason"] = route, reason
    return schemas.conform(frame, schemas.ROUTING, name="routing")


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
    keys = pa.table({"priority": pa.array(q["priority"].to_numpy()), "pair_id": pa.array(q["pair_id"], pa.string())})
    order = pc.sort_indices(keys, sort_keys=[("priority", "descending"), ("pair_id", "ascending")])  # Arrow sorts text 3x faster than pandas
    return schemas.conform(q.iloc[order.to_numpy()], schemas.HUMAN_QUEUE, name="human_queue")
