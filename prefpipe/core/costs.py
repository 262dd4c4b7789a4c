"""The cost ledger: every dollar a batch spent, per model and per route, and what it projects to.

LLM calls come priced by the LLM layer (tokens x its editable price table, Batch API calls at the
discounted price, cached calls free); human labels are priced here from HumanPrices. The
projection scales this batch's measured per-pair rates (LLM dollars, human labels, expert labels,
all per routed pair) to 10K-1M pairs and shows DESIGN.md's source figures beside them, so a reader
can see whether the source's $0.25-per-pair claim holds for their data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from prefpipe.core import schemas

PROJECTION_SIZES: Final[tuple[int, ...]] = (10_000, 100_000, 500_000, 1_000_000)
SOURCE_FIGURES: Final[dict[int, tuple[float, str]]] = {
    10_000: (2.00, "human only, kappa 0.72"),
    100_000: (1.50, "human with gold QA, kappa 0.68"),
    500_000: (0.40, "hybrid AI + human review, kappa 0.65"),
    1_000_000: (0.25, "AI with spot checks and active learning, kappa 0.62"),
}
"""DESIGN.md's source figures, dollars per pair at each scale."""

LLM_USAGE_COLUMNS: Final[tuple[str, ...]] = (
    "model", "prompt_tokens", "completion_tokens", "cost_usd", "batch_api", "cached",
)


@dataclass(frozen=True)
class HumanPrices:
    """Dollars paid per human label and per expert label (set them in the cost_report config;
    the defaults are placeholders in the range crowd platforms charge for a pairwise judgement)."""

    per_label: float = 0.50
    per_expert_label: float = 2.00

    def __post_init__(self) -> None:
        for name in ("per_label", "per_expert_label"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"HumanPrices.{name} must be a finite price >= 0, got {value}")


def _row(section: str, item: str, quantity: float, unit: float, total: float, note: str = "") -> dict:
    return {"section": section, "item": item, "quantity": float(quantity), "unit_usd": float(unit),
            "total_usd": float(total), "note": note}


def _per(total: float, n: float) -> float:
    return total / n if n else float("nan")


def _llm_calls(llm_usage: pd.DataFrame) -> pd.DataFrame:
    """Normalise the LLM layer's usage frame (prefpipe.llm.usage.USAGE: `batch`, `spent_usd`,
    `stage`, `item_id`, `status`) or the minimal one (LLM_USAGE_COLUMNS) to: model, stage, mode,
    tokens, cost (what this batch paid: 0 for a cached answer), item_id, status."""
    schemas.require_columns(llm_usage, ("model", "prompt_tokens", "completion_tokens", "cost_usd", "cached"), "llm_usage")
    batch_col = next((c for c in ("batch_api", "batch") if c in llm_usage.columns), None)
    if batch_col is None:
        raise KeyError("llm_usage: missing column(s) batch (or batch_api)")
    u = pd.DataFrame({
        "model": llm_usage["model"].astype("object").fillna("(unknown model)").to_numpy(),
        "stage": llm_usage["stage"].astype("object").fillna("").to_numpy() if "stage" in llm_usage.columns else "",
        "item_id": llm_usage["item_id"].astype("object").to_numpy() if "item_id" in llm_usage.columns else None,
        "status": llm_usage["status"].astype("object").fillna("ok").to_numpy() if "status" in llm_usage.columns else "ok",
        "prompt_tokens": pd.to_numeric(llm_usage["prompt_tokens"]).fillna(0).to_numpy(),
        "completion_tokens": pd.to_numeric(llm_usage["completion_tokens"]).fillna(0).to_numpy(),
    })
    cached = llm_usage["cached"].fillna(False).astype(bool).to_numpy()
    batch = llm_usage[batch_col].fillna(False).astype(bool).to_numpy()
    u["mode"] = np.where(cached, "cached", np.where(batch, "batch", "live"))
    # a cached answer was paid for once, when it was bought, not again by this batch; an unpriced
    # call stays NaN (counted in the note, never guessed)
    price = pd.to_numeric(llm_usage["cost_usd"], errors="raise").astype("float64").to_numpy()
    u["cost"] = np.where(cached, 0.0, price)
    u["bought_at"] = price
    return u


def _llm_rows(calls: pd.DataFrame) -> tuple[list[dict], float]:
    rows, total = [], 0.0
    for (model, stage, mode), g in calls.groupby(["model", "stage", "mode"], sort=True, dropna=False):
        unpriced = int(g["cost"].isna().sum())
        cost = float(g["cost"].sum(skipna=True))
        total += cost
        how = {"batch": "Batch API price", "live": "live price",
               "cached": f"served from the cache: ${g['bought_at'].sum(skipna=True):.4f} when bought, not paid again"}[mode]
        note = f"{int(g['prompt_tokens'].sum()):,} prompt + {int(g['completion_tokens'].sum()):,} completion tokens; {how}"
        pending = int((g["status"] == "pending").sum())
        failed = int((g["status"] == "failed").sum())
        if pending:
            note += f"; {pending} pending in the Batch API (not yet charged)"
        if failed:
            note += f"; {failed} failed (no charge)"
        if unpriced:
            note += f"; {unpriced} call(s) have no price (model missing from the price table) and are not counted"
        label = f"llm: {model}" + (f" {stage}" if stage else "") + f" ({mode})"
        rows.append(_row("ledger", label, len(g), _per(cost, len(g)), cost, note))
    return rows, total


def _human_labels(human_annotations: pd.DataFrame) -> pd.DataFrame:
    schemas.require_columns(human_annotations, ("pair_id", "label"), "human_annotations")
    h = human_annotations[human_annotations["label"].notna()].copy()
    h["pair_id"] = h["pair_id"].astype(str)
    h["is_expert"] = (h["role"] == "expert").to_numpy() if "role" in h.columns else False
    h["gold"] = h["is_gold"].fillna(False).astype(bool).to_numpy() if "is_gold" in h.columns else False
    return h


def cost_ledger(
    llm_usage: pd.DataFrame,
    human_annotations: pd.DataFrame,
    final_labels: pd.DataFrame,
    routing: pd.DataFrame,
    prices: HumanPrices = HumanPrices(),
    *,
    projection_sizes: tuple[int, ...] = PROJECTION_SIZES,
) -> pd.DataFrame:
    """COST_REPORT rows: the batch's ledger, then the projection.

    llm_usage: the LLM layer's usage frame (prefpipe.llm.usage: model, stage, item_id, tokens,
    cached, batch, status, cost_usd) or any frame with LLM_USAGE_COLUMNS (`batch_api` for
    `batch`). Cached answers cost this batch nothing; Batch API calls come at their discounted
    price; calls with no price are counted, noted and left out of the totals.

    Ledger: one line per (model, stage, live|batch|cached), human labels, expert labels, the
    total, dollars per final label, and dollars per route (calls that name a routed pair are
    charged to its route, the rest shared equally; human and expert labels charged to the route
    of the pair they labelled; labels on pairs outside the routing, such as gold questions, on a
    line of their own). Skipped items (no label) are not charged.
    """
    schemas.require_columns(routing, ("pair_id", "route"), "routing")
    schemas.require_columns(final_labels, ("pair_id",), "final_labels")
    calls = _llm_calls(llm_usage)
    rows, llm_total = _llm_rows(calls)
    h = _human_labels(human_annotations)
    n_human = int((~h["is_expert"]).sum())
    n_expert = int(h["is_expert"].sum())
    n_gold = int((h["gold"] & ~h["is_expert"]).sum())
    human_total = n_human * prices.per_label
    expert_total = n_expert * prices.per_expert_label
    # item names ai_label / human_label are what prefpipe.core.staleness reads as unit costs per label
    judge = calls["stage"].astype(str).str.startswith("judge") if calls["stage"].astype(str).ne("").any() \
        else pd.Series(True, index=calls.index)
    judge_total = float(calls.loc[judge, "cost"].sum(skipna=True))
    n_ai = int(routing["ai_status"].notna().sum()) if "ai_status" in routing.columns else int(len(routing))
    rows.append(_row("ledger", "ai_label", n_ai, _per(judge_total, n_ai), judge_total,
                     "judge calls above, per pair the judge labelled (already in the LLM lines: do not add twice)"))
    rows.append(_row("ledger", "human_label", n_human, prices.per_label, human_total,
                     "people's labels" + (f", including {n_gold} gold-question label(s)" if n_gold else "")))
    rows.append(_row("ledger", "expert_label", n_expert, prices.per_expert_label, expert_total, "experts' labels"))
    total = llm_total + human_total + expert_total
    n_pairs = int(routing["pair_id"].nunique())
    rows.append(_row("ledger", "total", n_pairs, _per(total, n_pairs), total, "unit = dollars per routed pair"))
    n_final = int(len(final_labels))
    rows.append(_row("ledger", "per final label", n_final, _per(total, n_final), total,
                     "every dollar divided by the labels the batch delivered"))

    route_of = routing.assign(pair_id=routing["pair_id"].astype(str)).drop_duplicates("pair_id").set_index("pair_id")["route"]
    h["route"] = h["pair_id"].map(route_of)
    h["price"] = np.where(h["is_expert"], prices.per_expert_label, prices.per_label)
    # calls that name a routed pair (the judge's) are charged to its route; the rest (generation,
    # per prompt) are shared equally over the routed pairs
    call_route = calls["item_id"].astype("object").map(route_of)
    direct = calls["cost"].where(call_route.notna(), 0.0).fillna(0.0).groupby(call_route).sum()
    shared_per_pair = _per(float(calls.loc[call_route.isna(), "cost"].sum(skipna=True)), n_pairs)
    pairs_per_route = route_of.value_counts()
    for route, n in pairs_per_route.items():
        people = float(h.loc[h["route"] == route, "price"].sum())
        llm = float(direct.get(route, 0.0)) + n * shared_per_pair
        spent = llm + people
        rows.append(_row("ledger", f"route: {route}", n, _per(spent, n), spent,
                         f"LLM {llm:.4f} (own calls + an equal share of the rest) + people {people:.2f}"))
    outside = h["route"].isna()
    if outside.any():
        spent = float(h.loc[outside, "price"].sum())
        rows.append(_row("ledger", "labels outside the routing (gold, other batches)", int(outside.sum()),
                         _per(spent, int(outside.sum())), spent, "unit = dollars per label"))

    rows += _projection(n_pairs, llm_total, n_human, n_expert, pairs_per_route, prices, projection_sizes)
    return schemas.conform(pd.DataFrame(rows, columns=list(schemas.COST_REPORT)), schemas.COST_REPORT, name="cost_report")


def _projection(n_pairs, llm_total, n_human, n_expert, pairs_per_route, prices, sizes) -> list[dict]:
    if n_pairs == 0:
        return [_row("projection", "no projection", 0, float("nan"), float("nan"), "the batch routed no pairs")]
    llm_pp = llm_total / n_pairs
    human_pp = n_human / n_pairs
    expert_pp = n_expert / n_pairs
    per_pair = llm_pp + human_pp * prices.per_label + expert_pp * prices.per_expert_label
    shares = ", ".join(f"{r} {c / n_pairs:.1%}" for r, c in pairs_per_route.items())
    basis = (
        f"measured per pair: LLM ${llm_pp:.4f}, {human_pp:.3f} human label(s) at ${prices.per_label:.2f}, "
        f"{expert_pp:.3f} expert label(s) at ${prices.per_expert_label:.2f}; routes {shares}"
    )
    rows = []
    for size in sizes:
        rows.append(_row("projection", f"prefpipe at {size:,} pairs", size, per_pair, per_pair * size, basis))
        if size in SOURCE_FIGURES:
            unit, what = SOURCE_FIGURES[size]
            rows.append(_row("projection", f"source at {size:,} pairs", size, unit, unit * size,
                             f"DESIGN.md source figure: {what}"))
    return rows


def cost_plot_png(cost_report: pd.DataFrame, *, title: str = "prefpipe cost report") -> bytes:
    """PNG of the report: dollars per route (left) and per-pair cost at scale, measured vs the
    source's figures (right). Agg backend, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    schemas.require_columns(cost_report, tuple(schemas.COST_REPORT), "cost_report")
    fig = Figure(figsize=(10, 4), dpi=100)
    left, right = fig.subplots(1, 2)
    routes = cost_report[(cost_report["section"] == "ledger") & cost_report["item"].str.startswith("route: ")]
    left.bar(routes["item"].str.removeprefix("route: "), routes["total_usd"], color="#4C72B0")
    left.set_title("this batch: dollars per route")
    left.set_ylabel("USD")
    left.tick_params(axis="x", rotation=20)
    proj = cost_report[cost_report["section"] == "projection"]
    ours = proj[proj["item"].str.startswith("prefpipe at ")]
    source = proj[proj["item"].str.startswith("source at ")]
    if len(ours):
        right.plot(ours["quantity"], ours["unit_usd"], "o-", label="prefpipe (this batch's rates)")
    if len(source):
        right.plot(source["quantity"], source["unit_usd"], "s--", label="source figures (DESIGN.md)")
    right.set_xscale("log")
    right.set_xlabel("pairs")
    right.set_ylabel("USD per pair")
    right.set_title("projection")
    if len(ours) or len(source):
        right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
