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

from prefpipe.core import pair_codes as pc_
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
DEFAULT_LABELS_PER_PAIR: Final[int] = 3
"""People's labels a pair routed to them needs, where neither the run config nor batch.json says."""
PEOPLE_ROUTES: Final[tuple[str, ...]] = ("spot_check", "human", "expert")
"""Routes whose pairs wait for people's labels (a spot check's AI label stands meanwhile)."""
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


def unique_pairs(df: pd.DataFrame, name: str, *, codes: np.ndarray | None = None, ids: pa.Array | None = None) -> None:
    """Raise RoutingError naming a few pair ids that appear more than once. The check runs on the
    ids' codes from prefpipe.core.pair_codes.encode when given, else on their Arrow text."""
    if pc_.all_distinct(codes) if codes is not None else pc_.distinct(pc_.id_array(df["pair_id"]) if ids is None else ids):
        return
    dup = df["pair_id"].duplicated(keep=False)
    if dup.any():
        ids = df.loc[dup, "pair_id"].astype(str).unique()
        raise RoutingError(
            f"{name}: {len(ids)} pair_id(s) appear more than once (expected one row per pair for the "
            f"primary judge), e.g. {', '.join(ids[:5])}"
        )


def spot_check_sample(pair_ids: pd.Series | pa.Array | np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Boolean mask choosing round(rate * n) of the pairs (at least one when rate > 0), by a keyed
    hash of the pair id: the same seed picks the same pairs whatever the row order."""
    n = len(pair_ids)
    if n == 0 or rate <= 0:
        return np.zeros(n, dtype=bool)
    k = min(n, max(1, int(round(rate * n))))
    key = f"prefpipe{seed:08d}"[-16:].rjust(16, "0")
    if isinstance(pair_ids, (pa.Array, pa.ChunkedArray)):
        text = pair_ids.to_numpy(zero_copy_only=False)
    else:
        text = pd.Series(pair_ids, dtype="object").astype(str).to_numpy()
    # the hash pandas' hash_pandas_object gives a Series of these str (categorize only saves work on repeats)
    h = pd.util.hash_array(np.asarray(text, dtype=object), hash_key=key, categorize=False)
    mask = np.zeros(n, dtype=bool)
    mask[np.argsort(h, kind="stable")[:k]] = True
    return mask


_STATUS_CODES: Final = {status: code for code, status in enumerate(AI_STATUSES)}
_REASONS: Final[tuple[str, ...]] = (NO_AI_LABEL, FAILED, UNPARSED, INCONSISTENT, NO_LABEL, NO_CONFIDENCE, LOW_CONFIDENCE, CONFIDENT, SPOT_CHECK)
_ROUTE_OF_REASON: Final[tuple[str, ...]] = ("human",) * 7 + ("accepted", "spot_check")


def _checked_status(ai_labels: pd.DataFrame) -> pa.Array:
    """ai_labels.status as Arrow text, every value one of AI_STATUSES (RoutingError naming the
    first one that is not)."""
    status = pc_.text_array(ai_labels["status"])
    if pc.all(pc.fill_null(pc.is_in(status, value_set=pa.array(AI_STATUSES, pa.large_string())), False)).as_py() or len(status) == 0:
        return status
    objects = ai_labels["status"].astype("object")
    bad = ~objects.isin(AI_STATUSES)
    raise RoutingError(
        f"ai_labels.status: {objects[bad].iloc[0]!r} (pair {ai_labels['pair_id'][bad].iloc[0]}) is not one of "
        f"{', '.join(AI_STATUSES)}"
    )


def _live_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs[~pairs["dropped"].fillna(False).astype(bool).to_numpy()] if "dropped" in pairs.columns else pairs


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
    Pair ids are matched as integer codes (prefpipe.core.pair_codes), text stays in Arrow.
    """
    schemas.require_columns(ai_labels, ("pair_id", "label", "status", "confidence"), "ai_labels")
    ids = pc_.id_array(ai_labels["pair_id"])
    live = live_ids = None
    if pairs is not None:
        schemas.require_columns(pairs, ("pair_id",), "pairs")
        live = _live_pairs(pairs)
        live_ids = pc_.id_array(live["pair_id"])
    same = live_ids is not None and ids.equals(live_ids)  # the usual case: the judge saw the pairs in their order
    codes, live_codes = pc_.encode(ids, live_ids) if live_ids is not None and not same else (None, None)
    unique_pairs(ai_labels, "ai_labels", codes=codes, ids=ids)
    status = _checked_status(ai_labels)
    pc_.check_labels(ai_labels["label"], field="ai_labels.label")
    label = pc_.text_array(ai_labels["label"])
    confidence = pd.to_numeric(ai_labels["confidence"], errors="raise").astype("float64").to_numpy()
    if live is not None:
        if not same:
            unique_pairs(live, "pairs", codes=live_codes)
        at = np.arange(len(ids)) if same else pc_.positions(live_codes, codes)
        unknown = at < 0
        if unknown.any():
            raise RoutingError(
                f"ai_labels: {int(unknown.sum())} pair_id(s) are not among the (undropped) pairs, "
                f"e.g. {', '.join(ids.take(pa.array(np.flatnonzero(unknown)[:5])).to_pylist())}"
            )
        labelled = np.zeros(len(live_ids), dtype=bool)
        labelled[at] = True
        missing = pa.array(~labelled)
        n_missing = len(live_ids) - int(labelled.sum())
        if n_missing:
            ids = pa.concat_arrays([ids, live_ids.filter(missing)])
            label = pa.concat_arrays([label, pa.nulls(n_missing, pa.large_string())])
            status = pa.concat_arrays([status, pa.nulls(n_missing, pa.large_string())])
            confidence = np.concatenate([confidence, np.full(n_missing, np.nan)])

    has_label = pc.is_valid(label).to_numpy(zero_copy_only=False)
    st = pc.fill_null(pc.index_in(status, value_set=pa.array(AI_STATUSES, pa.large_string())), -1).to_numpy(zero_copy_only=False)
    ok, unparsed, inconsistent, failed = (st == _STATUS_CODES[s] for s in AI_STATUSES)
    consistent_ok = ok | ((not config.require_consistent) & inconsistent & has_label)
    conditions = [st < 0, failed, unparsed, inconsistent & ~consistent_ok, ~has_label, np.isnan(confidence), confidence < config.accept_confidence]
    reason = np.select(conditions, list(range(len(conditions))), default=_REASONS.index(CONFIDENT)).astype(np.int8)

    accepted = np.flatnonzero(reason == _REASONS.index(CONFIDENT))
    spot = accepted[spot_check_sample(ids.take(pa.array(accepted)), config.spot_check_rate, config.seed)]
    reason[spot] = _REASONS.index(SPOT_CHECK)

    reason_codes = pa.array(reason)
    frame = pd.DataFrame(
        {
            "pair_id": pc_.text_series(ids),
            "route": pc_.text_series(pa.array(_ROUTE_OF_REASON, pa.large_string()).take(reason_codes)),
            "reason": pc_.text_series(pa.array(_REASONS, pa.large_string()).take(reason_codes)),
            "ai_label": pc_.text_series(label),
            "ai_confidence": confidence,
            "ai_status": pc_.text_series(status),
        }
    )
    frame["labels_wanted"] = labels_wanted(frame["route"], config.labels_per_pair)
    return schemas.conform(frame, schemas.ROUTING, name="routing")


def labels_wanted(route: pd.Series, labels_per_pair: int) -> pd.Series:
    """Labels each pair needs from people before it is final, by its route: one expert's for the
    expert route, `labels_per_pair` people's for human and spot checks, none (null) where the AI
    label stands. Routing records it, so the queue and final labels read the same number."""
    codes = pc.fill_null(pc.index_in(pc_.text_array(route), value_set=pa.array(PEOPLE_ROUTES, pa.large_string())), -1).to_numpy(zero_copy_only=False)
    wanted = np.where(codes == PEOPLE_ROUTES.index("expert"), 1, labels_per_pair)
    return pd.Series(pd.arrays.IntegerArray(wanted.astype("int64"), codes < 0), index=route.index)


def route_counts(routing: pd.DataFrame) -> dict[str, int]:
    """Pairs per route (every route named, zero included), for asset metadata."""
    counts = routing["route"].value_counts()
    return {r: int(counts.get(r, 0)) for r in ROUTES}


def build_human_queue(routing: pd.DataFrame, config: RoutingConfig = RoutingConfig()) -> pd.DataFrame:
    """HUMAN_QUEUE rows for every pair a person should (or, over budget, would) see.

    Priority: expert escalations first (3), then spot checks (2), then pairs routed to people
    (1 + uncertainty, the least confident first), then over-budget pairs (uncertainty, not
    enqueued). Labels wanted are routing's `labels_wanted` where it records them (over-budget pairs
    and older routing tables: one expert's label, else `labels_per_pair`).
    """
    schemas.require_columns(routing, ("pair_id", "route", "reason", "ai_confidence"), "routing")
    q = routing[routing["route"].isin(["expert", "spot_check", "human", "over_budget"])].copy()
    u = 1.0 - q["ai_confidence"].astype("float64").fillna(0.0).to_numpy()
    base = q["route"].map({"expert": 3.0, "spot_check": 2.0, "human": 1.0, "over_budget": 0.0}).to_numpy()
    q["priority"] = np.where(q["route"].isin(["human", "over_budget"]), base + u, base)
    recorded = q["labels_wanted"] if "labels_wanted" in q.columns else pd.Series(pd.NA, index=q.index, dtype="Int64")
    q["labels_wanted"] = recorded.astype("Int64").fillna(labels_wanted(q["route"], config.labels_per_pair).fillna(config.labels_per_pair))
    q["enqueued"] = q["route"] != "over_budget"
    keys = pa.table({"priority": pa.array(q["priority"].to_numpy()), "pair_id": pa.array(q["pair_id"], pa.string())})
    order = pc.sort_indices(keys, sort_keys=[("priority", "descending"), ("pair_id", "ascending")])  # Arrow sorts text 3x faster than pandas
    return schemas.conform(q.iloc[order.to_numpy()], schemas.HUMAN_QUEUE, name="human_queue")
