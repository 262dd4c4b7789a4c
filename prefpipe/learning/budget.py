"""Spending a human budget: when more pairs need people than the batch's budget allows, active
learning chooses which ones they see. Spot checks are served first (they are the audit); the pairs
left out are routed "over_budget": their AI label stands if they have one, otherwise none.

`route_pairs` is the routing the pipeline runs: prefpipe.core.routing's rules, then the budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.core import routing as rules
from prefpipe.core import schemas
from prefpipe.learning import active


def route_pairs(
    ai_labels: pd.DataFrame,
    config: rules.RoutingConfig = rules.RoutingConfig(),
    *,
    pairs: pd.DataFrame | None = None,
    reward_model=None,
) -> pd.DataFrame:
    """ROUTING rows by prefpipe.core.routing.route_pairs, with config.human_budget spent.

    pairs: as for the rules; its texts let diversity/hybrid selection rank the candidates.
    reward_model: optional fitted RewardModel whose score gaps drive uncertainty under a budget;
    without one the judge's own confidence is the uncertainty (1 - confidence).
    """
    routed = rules.route_pairs(ai_labels, config, pairs=pairs)
    if config.human_budget is None:
        return routed
    texts = None
    if pairs is not None and {"prompt", "response_a", "response_b"} <= set(pairs.columns):
        live = pairs[~pairs["dropped"].fillna(False).astype(bool)] if "dropped" in pairs.columns else pairs
        texts = live.assign(pair_id=live["pair_id"].astype(str)).set_index("pair_id").loc[routed["pair_id"].astype(str)]
    route = routed["route"].to_numpy(dtype=object).copy()
    reason = routed["reason"].to_numpy(dtype=object).copy()
    _apply_budget(routed, route, reason, config, texts, reward_model)
    routed = routed.assign(route=route, reason=reason)
    routed["labels_wanted"] = rules.labels_wanted(routed["route"], config.labels_per_pair)
    return schemas.conform(routed, schemas.ROUTING, name="routing")


def _apply_budget(frame, route, reason, config: rules.RoutingConfig, texts, reward_model) -> None:
    capacity = int(config.human_budget) // config.labels_per_pair
    spot = np.flatnonzero(route == "spot_check")
    if len(spot) > capacity:
        keep = np.zeros(len(spot), dtype=bool)
        if capacity:
            keep = rules.spot_check_sample(frame["pair_id"].iloc[spot], capacity / len(spot), config.seed)
        drop = spot[~keep]
        route[drop], reason[drop] = "accepted", rules.SPOT_CHECK_OVER_BUDGET
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


