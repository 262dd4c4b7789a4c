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

from prefpipe import schemas

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


def _require(df: pd.DataFrame, cols, name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{name}: missing column(s) {', '.join(missing)}")


def _row(section: str, item: str, quantity: float, unit: float, total: float, note: str = "") -> dict:
    return {"section": section, "item": item, "quantity": float(quantity), "unit_usd": float(unit),
            "total_usd": float(total), "note": note}


def _per(total: float, n: float) -> float:
    return total / n if n else float("nan")


def _llm_rows(llm_usage: pd.DataFrame) -> tuple[list[dict], float]:
    _require(llm_usage, LLM_USAGE_COLUMNS, "llm_usage")
    u = llm_usage.copy()
    u["cached"] = u["cached"].fillna(False).astype(bool)
    u["batch_api"] = u["batch_api"].fillna(False).astype(bool)
    u["mode"] = np.where(u["cached"], "cached", np.where(u["batch_api"], "batch", "live"))
    # a cached call costs nothing whatever the row says; an unpriced live call is not guessed
    u["cost"] = np.where(u["cached"], 0.0, pd.to_numeric(u["cost_usd"], errors="raise").astype("float64"))
    rows, total = [], 0.0
    for (model, mode), g in u.groupby(["model", "mode"], sort=True, dropna=False):
        unpriced = int(g["cost"].isna().sum())
        cost = float(g["cost"].sum(skipna=True))
        total += cost
        note = (
            f"{int(g['prompt_tokens'].fillna(0).sum()):,} prompt + {int(g['completion_tokens'].fillna(0).sum()):,} "
            f"completion tokens; {'Batch API price' if mode == 'batch' else 'served from cache, free' if mode == 'cached' else 'live price'}"
        )
        if unpriced:
            note += f"; {unpriced} call(s) have no price (model missing from the price table) and are not counted"
        rows.append(_row("ledger", f"llm: {model} ({mode})", len(g), _per(cost, len(g)), cost, note))
    return rows, total


def _human_labels(human_annotations: pd.DataFrame) -> pd.DataFrame:
    _require(human_annotations, ("pair_id", "label"), "human_annotations")
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

    Ledger: one line per (model, live|batch|cached), human labels, expert labels, the total,
    dollars per final label, and dollars per route (LLM spend shared equally over the routed
    pairs; human and expert labels charged to the route of the pair they labelled; labels on pairs
    outside the routing, such as gold questions, on a line of their own). Skipped items (no
    label) are not charged.
    """
    _require(routing, ("pair_id", "route"), "routing")
    _require(final_labels, ("pair_id",), "final_labels")
    rows, llm_total = _llm_rows(llm_usage)
    h = _human_labels(human_annotations)
    n_human = int((~h["is_expert"]).sum())
    n_expert = int(h["is_expert"].sum())
    n_gold = int((h["gold"] & ~h["is_expert"]).sum())
    human_total = n_human * prices.per_label
    expert_total = n_expert * prices.per_expert_label
    rows.append(_row("ledger", "human labels", n_human, prices.per_label, human_total,
                     f"includes {n_gold} gold-question label(s)" if n_gold else ""))
    rows.append(_row("ledger", "expert labels", n_expert, prices.per_expert_label, expert_total))
    total = llm_total + human_total + expert_total
    n_pairs = int(routing["pair_id"].nunique())
    rows.append(_row("ledger", "total", n_pairs, _per(total, n_pairs), total, "unit = dollars per routed pair"))
    n_final = int(len(final_labels))
    rows.append(_row("ledger", "per final label", n_final, _per(total, n_final), total,
                     "every dollar divided by the labels the batch delivered"))

    route_of = routing.assign(pair_id=routing["pair_id"].astype(str)).drop_duplicates("pair_id").set_index("pair_id")["route"]
    h["route"] = h["pair_id"].map(route_of)
    h["price"] = np.where(h["is_expert"], prices.per_expert_label, prices.per_label)
    llm_per_pair = _per(llm_total, n_pairs)
    pairs_per_route = route_of.value_counts()
    for route, n in pairs_per_route.items():
        people = float(h.loc[h["route"] == route, "price"].sum())
        spent = n * llm_per_pair + people
        rows.append(_row("ledger", f"route: {route}", n, _per(spent, n), spent,
                         f"LLM {n * llm_per_pair:.2f} + people {people:.2f}"))
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

    _require(cost_report, tuple(schemas.COST_REPORT), "cost_report")
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
