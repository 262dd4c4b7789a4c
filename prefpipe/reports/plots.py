"""The report's figures, as PNG bytes.

Each function takes the warehouse rows it needs and returns a PNG, so the same picture goes into
the Dagster UI (markdown), the HTML report and anywhere else. Figures are drawn on matplotlib's
Agg canvas through the object API (no pyplot global state), so they are safe in any thread and
need no display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prefpipe.core.labels import SCALE

INK = "#1f2933"
MUTED = "#7b8794"
BLUE = "#2f6fde"
ORANGE = "#e8833a"
GREEN = "#2e9e6a"
RED = "#d64545"
GREY = "#cbd2d9"
SOURCE_COLORS = {"annotations": "#8e6bd1", "ai": ORANGE}
BANDS = (
    (0.0, 0.2, "slight", "#fde2e2"),
    (0.2, 0.4, "fair", "#fdebd3"),
    (0.4, 0.6, "moderate", "#fdf6d3"),
    (0.6, 0.8, "substantial", "#e3f4e8"),
    (0.8, 1.0, "almost perfect", "#cdeedb"),
)
DPI = 110


def _figure(width: float = 9.0, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax, title: str) -> None:
    ax.set_title(title, loc="left", fontsize=11, color=INK, fontweight="bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GREY)
    ax.tick_params(colors=INK, labelsize=9)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _empty(title: str, message: str) -> bytes:
    fig = _figure(height=1.6)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=11, color=INK, fontweight="bold")
    ax.text(0.5, 0.45, message, ha="center", va="center", color=MUTED, fontsize=10, transform=ax.transAxes)
    return _png(fig)


def reliability_plot(annotator_reliability: pd.DataFrame, *, threshold: float = 0.6, max_annotators: int = 40) -> bytes:
    """Composite reliability per annotator (bars, red when filtered out), with gold accuracy and
    agreement with the majority as markers and the keep threshold as a line. With many annotators,
    the least reliable `max_annotators` are shown."""
    title = "Annotator reliability"
    df = annotator_reliability.dropna(subset=["composite"]) if not annotator_reliability.empty else annotator_reliability
    if df.empty:
        return _empty(title, "No annotator has a reliability score yet.")
    df = df.sort_values("composite").head(max_annotators)
    fig = _figure(height=max(2.2, 0.32 * len(df) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(df))
    kept = df["kept"].fillna(True).astype(bool).to_numpy() if "kept" in df else np.ones(len(df), bool)
    ax.barh(y, df["composite"].astype(float), color=np.where(kept, BLUE, RED), height=0.6, label="composite")
    if "gold_accuracy" in df:
        ax.scatter(df["gold_accuracy"].astype(float), y, marker="D", s=22, color=INK, zorder=3, label="gold accuracy")
    if "majority_agreement" in df:
        ax.scatter(df["majority_agreement"].astype(float), y, marker="o", s=22, facecolor="white", edgecolor=INK, zorder=3, label="agreement with majority")
    ax.axvline(threshold, color=RED, linestyle="--", linewidth=1)
    ax.text(threshold, len(df) - 0.4, f" keep ≥ {threshold:.2f}", color=RED, fontsize=8, va="bottom")
    ax.set_yticks(y, df["annotator_id"].astype(str))
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("score", color=INK, fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22 if len(df) < 6 else -0.08), ncol=3, fontsize=8, frameon=False)
    _style(ax, title)
    return _png(fig)


def label_distribution_plot(sources: dict[str, pd.Series]) -> bytes:
    """Share of each scale point, one bar group per source (e.g. {"human": ..., "ai": ...});
    missing labels are counted apart, never as ties."""
    title = "Label distribution"
    sources = {k: v if isinstance(v, pd.Series) else pd.Series(v, dtype="object") for k, v in sources.items() if v is not None and len(v)}
    if not sources:
        return _empty(title, "No labels yet.")
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(SCALE))
    width = 0.8 / len(sources)
    for i, (name, labels) in enumerate(sources.items()):
        missing = int(labels.isna().sum())  # counted in the labels' own dtype: no Python object per label
        present = len(labels) - missing
        shares = labels.value_counts().reindex(SCALE, fill_value=0).to_numpy(dtype="int64") / max(present, 1)
        bars = ax.bar(x - 0.4 + width * (i + 0.5), shares, width * 0.92, color=SOURCE_COLORS.get(name, BLUE if name.startswith("final") else MUTED),
                      label=f"{name} (n={present:,}" + (f", {missing:,} missing)" if missing else ")"))
        for bar, share in zip(bars, shares):
            if share > 0:
                ax.text(bar.get_x() + bar.get_width() / 2, share, f"{share:.0%}", ha="center", va="bottom", fontsize=7, color=INK)
    ax.set_xticks(x, SCALE)
    ax.set_ylabel("share of labels", fontsize=9, color=INK)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(fontsize=8, frameon=False)
    _style(ax, title)
    return _png(fig)


def agreement_plot(agreement_report: pd.DataFrame) -> bytes:
    """Batch-level agreement metrics with their confidence intervals over the interpretation bands."""
    title = "Agreement (95% CI)"
    df = agreement_report
    if not df.empty:
        df = df[~df["scope"].astype(str).str.contains("|", regex=False) & df["value"].notna()]
    if df.empty:
        return _empty(title, "No agreement figures yet.")
    fig = _figure(height=max(2.2, 0.45 * len(df) + 1.1))
    ax = fig.add_subplot()
    lo = min(0.0, float(np.nanmin(df[["value", "ci_low"]].astype(float).to_numpy())) - 0.05)
    for start, end, name, color in BANDS:
        ax.axvspan(start, end, color=color, zorder=0)
        ax.text((start + end) / 2, len(df) - 0.35, name, ha="center", va="bottom", fontsize=7, color=MUTED)
    y = np.arange(len(df))
    value = df["value"].astype(float).to_numpy()
    low = df["ci_low"].astype(float).to_numpy()
    high = df["ci_high"].astype(float).to_numpy()
    has_ci = ~(np.isnan(low) | np.isnan(high))
    ax.errorbar(value[has_ci], y[has_ci], xerr=[value[has_ci] - low[has_ci], high[has_ci] - value[has_ci]],
                fmt="none", ecolor=INK, elinewidth=1.2, capsize=3, zorder=2)
    ax.scatter(value, y, color=BLUE, s=36, zorder=3)
    for yi, v in zip(y, value):
        ax.text(v, yi + 0.18, f"{v:.3f}", ha="center", va="bottom", fontsize=8, color=INK)
    labels = [m if s in ("batch", "", "nan") else f"{m} ({s})" for m, s in zip(df["metric"].astype(str), df["scope"].astype(str))]
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.6, len(df) - 0.1)
    ax.set_xlim(lo, 1.0)
    _style(ax, title)
    return _png(fig)


def judge_bias_plot(judge_card: pd.DataFrame) -> bytes:
    """Position bias (share of verdicts for the first-shown response) and length bias (share for
    the longer response, with the people's share on the same pairs as a marker), per judge."""
    title = "Judge position and length bias"
    if judge_card.empty:
        return _empty(title, "No AI labels yet.")
    fig = _figure(height=max(2.2, 0.7 * len(judge_card) + 1.3))
    ax = fig.add_subplot()
    y = np.arange(len(judge_card))
    ax.barh(y + 0.18, judge_card["first_slot_preference"].astype(float).fillna(0), 0.34, color=BLUE, label="prefers first-shown response")
    ax.barh(y - 0.18, judge_card["longer_preference"].astype(float).fillna(0), 0.34, color=ORANGE, label="prefers longer response")
    ax.scatter(judge_card["human_longer_preference"].astype(float), y - 0.18, marker="D", s=40, color=INK, edgecolor="white", zorder=3, label="people prefer longer (same pairs)")
    for yi, (a, b) in enumerate(zip(judge_card["first_slot_preference"], judge_card["longer_preference"])):
        for value, offset in ((a, 0.18), (b, -0.18)):
            ax.text(0.01 if pd.isna(value) else float(value) + 0.01, yi + offset, "n/a" if pd.isna(value) else f"{float(value):.0%}", va="center", fontsize=8, color=INK)
    ax.axvline(0.5, color=MUTED, linestyle="--", linewidth=1)
    ax.set_yticks(y, judge_card["judge"].astype(str))
    ax.set_xlim(0, 1.08)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    _style(ax, title)
    return _png(fig)


def cost_by_route(
    routing: pd.DataFrame,
    ai_labels: pd.DataFrame,
    human_annotations: pd.DataFrame,
    *,
    human_unit_usd: float | None,
) -> pd.DataFrame:
    """Cost per routing decision: route, n_pairs, ai_usd (judge cost of those pairs), human_usd
    (their human labels x human_unit_usd; NaN when the unit cost is unknown), total_usd, usd_per_pair.

    Pairs are matched by their first row in routing, as integer codes from one Arrow hash pass
    over every table's ids (prefpipe.core.pair_codes), not by a pandas groupby and map over a
    million pair ids; a pair's judge costs are still summed in pandas, in row order."""
    from prefpipe.core import pair_codes

    cost = pd.Series(ai_labels["cost_usd"].to_numpy(dtype="float64", na_value=np.nan)) if not ai_labels.empty else pd.Series(dtype="float64")
    priced = not np.isnan(cost.to_numpy()).all()  # imported verdicts carry no cost: every pair's AI cost is then NaN
    frames = {name: f for name, f, use in (("ai", ai_labels, priced), ("human", human_annotations, not human_annotations.empty)) if use}
    keys, *codes = pair_codes.encode(*(pair_codes.text_array(f["pair_id"]) for f in (routing, *frames.values())))
    at = dict(zip(frames, codes, strict=True))
    first = pair_codes.positions(keys, keys)
    ai_usd = np.full(len(routing), np.nan)
    if priced:
        rows = pair_codes.positions(keys, at["ai"])
        mine = rows >= 0
        if pair_codes.all_distinct(rows[mine]):  # a verdict a pair: its sum is its cost (+ 0.0, as a sum makes -0.0 0.0)
            sums = np.full(len(routing) + 1, np.nan)
            sums[rows[mine]] = cost.to_numpy()[mine] + 0.0
            ai_usd = sums[first]  # first is -1 (the NaN slot) for an id routing cannot match
        else:
            ai_usd = cost[mine].groupby(rows[mine]).sum(min_count=1).reindex(first).to_numpy(dtype="float64")
    n_human = np.zeros(len(routing))
    if not human_annotations.empty:
        rows = pair_codes.positions(keys, at["human"])[human_annotations["label"].notna().to_numpy()]
        counts = np.bincount(rows[rows >= 0], minlength=len(routing)).astype("float64")
        n_human = np.where(first < 0, 0.0, counts[np.maximum(first, 0)]) if len(routing) else n_human
    df = pd.DataFrame({"route": routing["route"].reset_index(drop=True), "ai_usd": ai_usd, "n_human": n_human})
    g = df.groupby("route", sort=True)
    unit = np.nan if human_unit_usd is None else float(human_unit_usd)
    n_human_route = g["n_human"].sum()
    out = pd.DataFrame(
        {
            "route": g.size().index,
            "n_pairs": g.size().to_numpy(),
            "ai_usd": g["ai_usd"].sum(min_count=1).fillna(0.0).to_numpy(),
            "human_usd": np.where(n_human_route.to_numpy() > 0, n_human_route.to_numpy() * unit, 0.0),
        }
    )
    out["total_usd"] = out["ai_usd"] + out["human_usd"]
    out["usd_per_pair"] = out["total_usd"] / out["n_pairs"]
    return out


def cost_per_route_plot(costs: pd.DataFrame) -> bytes:
    """Stacked AI + human cost per pair for each route (from cost_by_route), totals annotated."""
    title = "Cost per pair by route"
    if costs.empty:
        return _empty(title, "No routed pairs yet.")
    fig = _figure(height=max(2.2, 0.5 * len(costs) + 1.3))
    ax = fig.add_subplot()
    y = np.arange(len(costs))
    n = costs["n_pairs"].astype(float).to_numpy()
    ai = costs["ai_usd"].astype(float).to_numpy() / n
    human = costs["human_usd"].astype(float).to_numpy() / n
    ax.barh(y, ai, color=ORANGE, height=0.55, label="AI judge")
    ax.barh(y, np.nan_to_num(human), left=ai, color=BLUE, height=0.55, label="human labels")
    for yi, (a, h, total, count) in enumerate(zip(ai, human, costs["total_usd"], n)):
        # "\\$": a bare $ would start matplotlib's math mode
        text = (
            f"\\${a + h:.4f} per pair · {int(count):,} pairs · \\${float(total):,.2f} in all"
            if not np.isnan(h)
            else f"\\${a:.4f} per pair (AI); human cost unknown"
        )
        ax.text(a + np.nan_to_num(h), yi, "  " + text, va="center", fontsize=8, color=INK)
    ax.set_yticks(y, costs["route"].astype(str))
    right = float(np.nanmax(ai + np.nan_to_num(human)))
    ax.set_xlim(0, max(right * 1.9, 1e-6))
    ax.set_xlabel("USD per pair", fontsize=9, color=INK)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    _style(ax, title)
    return _png(fig)


def version_plot(versions: pd.DataFrame, stages: Sequence[str] = ("ai_labels", "human_annotations")) -> bytes:
    """Labels per guideline version and stage (from staleness.label_versions)."""
    title = "Labels by guideline version"
    if versions.empty:
        return _empty(title, "No labels yet.")
    table = versions.assign(guideline_version=versions["guideline_version"].fillna("(unknown)")).pivot_table(
        index="guideline_version", columns="stage", values="n_labels", aggfunc="sum", fill_value=0
    )
    table = table.reindex(columns=[s for s in stages if s in table.columns])
    fig = _figure(height=max(2.0, 0.45 * len(table) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(table))
    left = np.zeros(len(table))
    for stage, color in zip(table.columns, (ORANGE, BLUE, GREEN)):
        values = table[stage].to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=color, height=0.55, label=stage)
        left += values
    ax.set_yticks(y, table.index.astype(str))
    ax.set_xlabel("labels", fontsize=9, color=INK)
    ax.legend(fontsize=8, frameon=False)
    _style(ax, title)
    return _png(fig)
