"""The completion-over-runs figure: how a batch's pairs moved from waiting for people to final,
run after run (the final_labels asset's metadata draws one per batch from its own history)."""

from __future__ import annotations

import pandas as pd

from prefpipe.reports.plots import BLUE, GREEN, GREY, ORANGE, _empty, _figure, _png, _style

COMPLETION_COLUMNS = ("run_at", "final_ai", "final_people", "waiting")
"""One row per run: when it ran, its final labels from the AI and from people, its waiting pairs."""


def completion_plot(history: pd.DataFrame) -> bytes:
    """Stacked counts per run, oldest first: final AI labels, final people's labels (annotators or
    an expert) and the pairs still waiting for people."""
    title = "Completion over runs"
    if history.empty:
        return _empty(title, "no run of this batch recorded yet")
    missing = [c for c in COMPLETION_COLUMNS if c not in history.columns]
    if missing:
        raise KeyError(f"completion history: missing column(s) {', '.join(missing)}")
    rows = history.sort_values("run_at", kind="stable").reset_index(drop=True)
    fig = _figure(9.0, 3.2)
    ax = fig.add_subplot()
    x = range(len(rows))
    bottom = pd.Series(0, index=rows.index)
    for column, label, color in (("final_ai", "final: AI", ORANGE), ("final_people", "final: people", GREEN), ("waiting", "waiting for people", GREY)):
        values = rows[column].astype(int)
        ax.bar(x, values, bottom=bottom, color=color, label=label, width=0.7)
        bottom = bottom + values
    ax.set_xticks(list(x), [pd.Timestamp(t, unit="s", tz="UTC").strftime("%m-%d %H:%M") for t in rows["run_at"]], rotation=30, fontsize=8)
    ax.set_ylabel("pairs", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="upper left", ncols=3)
    ax.margins(y=0.15)
    _style(ax, title)
    ax.spines["left"].set_color(BLUE)
    return _png(fig)
