from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import costs, schemas


def usage() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("judge-m", 100, 10, 0.01, False, False),
            ("judge-m", 100, 10, 0.01, False, False),
            ("judge-m", 100, 10, 0.01, False, False),
            ("judge-m", 200, 20, 0.005, True, False),
            ("judge-m", 200, 20, 0.005, True, False),
            ("judge-m", 100, 10, 0.01, False, True),  # cached: free whatever the row says
            ("gen-m", 50, 500, 0.02, False, False),
            ("gen-m", 50, 500, None, False, False),  # no price in the table
        ],
        columns=list(costs.LLM_USAGE_COLUMNS),
    )


def routing() -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": ["p1", "p2", "p3", "p4"],
        "route": ["accepted", "accepted", "spot_check", "human"],
        "reason": ["x"] * 4,
        "ai_label": ["A>B"] * 4,
        "ai_confidence": [0.9, 0.9, 0.9, 0.3],
        "ai_status": ["ok"] * 4,
    })


def annotations() -> pd.DataFrame:
    rows = [
        ("p3", "a1", "A>B", "annotator", False),
        ("p4", "a1", "B>A", "annotator", False),
        ("p4", "a2", "B>A", "annotator", False),
        ("p4", "a3", None, "annotator", False),  # skipped: not charged
        ("gold-7", "a1", "A>>B", "annotator", True),
        ("p3", "e1", "B>A", "expert", False),
    ]
    return pd.DataFrame(rows, columns=["pair_id", "annotator_id", "label", "role", "is_gold"])


def final_labels() -> pd.DataFrame:
    return pd.DataFrame({"pair_id": ["p1", "p2", "p3"], "label": ["A>B", "A>B", "B>A"]})


PRICES = costs.HumanPrices(per_label=0.5, per_expert_label=3.0)


def test_ledger_arithmetic():
    report = costs.cost_ledger(usage(), annotations(), final_labels(), routing(), PRICES)
    assert list(report.columns) == list(schemas.COST_REPORT)
    ledger = report[report["section"] == "ledger"].set_index("item")
    judge_live = ledger.loc["llm: judge-m (live)"]
    assert judge_live["quantity"] == 3 and judge_live["total_usd"] == pytest.approx(0.03)
    assert judge_live["unit_usd"] == pytest.approx(0.01) and "300 prompt + 30 completion" in judge_live["note"]
    assert ledger.loc["llm: judge-m (batch)", "total_usd"] == pytest.approx(0.01)
    assert ledger.loc["llm: judge-m (cached)", "total_usd"] == 0.0
    gen = ledger.loc["llm: gen-m (live)"]
    assert gen["quantity"] == 2 and gen["total_usd"] == pytest.approx(0.02) and "1 call(s) have no price" in gen["note"]
    assert ledger.loc["human_label", ["quantity", "unit_usd", "total_usd"]].tolist() == [4, 0.5, 2.0]
    assert "1 gold" in ledger.loc["human_label", "note"]
    assert ledger.loc["expert_label", ["quantity", "total_usd"]].tolist() == [1, 3.0]
    # without stages every call counts as judging: 0.06 over the 4 pairs the judge labelled
    assert ledger.loc["ai_label", "unit_usd"] == pytest.approx(0.06 / 4)
    from prefpipe.core.staleness import unit_costs

    assert unit_costs(report) == {"ai_labels": pytest.approx(0.015), "human_annotations": 0.5}
    total = 0.03 + 0.01 + 0.02 + 2.0 + 3.0
    assert ledger.loc["total", "total_usd"] == pytest.approx(total)
    assert ledger.loc["total", "unit_usd"] == pytest.approx(total / 4)
    assert ledger.loc["per final label", "quantity"] == 3
    assert ledger.loc["per final label", "unit_usd"] == pytest.approx(total / 3)
    llm_pp = 0.06 / 4
    assert ledger.loc["route: accepted", "total_usd"] == pytest.approx(2 * llm_pp)
    assert ledger.loc["route: spot_check", "total_usd"] == pytest.approx(llm_pp + 0.5 + 3.0)
    assert ledger.loc["route: human", "total_usd"] == pytest.approx(llm_pp + 1.0)
    outside = ledger.loc["labels outside the routing (gold, other batches)"]
    assert outside["quantity"] == 1 and outside["total_usd"] == 0.5
    # every dollar is in exactly one route line (or the outside line)
    route_lines = ledger[ledger.index.str.startswith("route: ")]["total_usd"].sum() + outside["total_usd"]
    assert route_lines == pytest.approx(total)


def test_projection_scales_measured_rates_beside_the_source_figures():
    report = costs.cost_ledger(usage(), annotations(), final_labels(), routing(), PRICES)
    proj = report[report["section"] == "projection"].set_index("item")
    per_pair = 0.06 / 4 + (4 / 4) * 0.5 + (1 / 4) * 3.0
    for size in costs.PROJECTION_SIZES:
        row = proj.loc[f"prefpipe at {size:,} pairs"]
        assert row["quantity"] == size
        assert row["unit_usd"] == pytest.approx(per_pair)
        assert row["total_usd"] == pytest.approx(per_pair * size)
        assert "accepted 50.0%" in row["note"]
        src = proj.loc[f"source at {size:,} pairs"]
        assert src["unit_usd"] == costs.SOURCE_FIGURES[size][0]
        assert src["total_usd"] == pytest.approx(costs.SOURCE_FIGURES[size][0] * size)
    assert [costs.SOURCE_FIGURES[s][0] for s in costs.PROJECTION_SIZES] == [2.00, 1.50, 0.40, 0.25]


def test_llm_layer_usage_frame_is_read_and_judge_calls_charged_to_their_route():
    from prefpipe.llm.usage import USAGE

    rows = [
        # call_key, stage, actor, item_id, model, p, c, cached, batch, status, attempts, cost, spent, error
        ("k1", "judge", "j", "p1", "judge-m", 100, 10, False, False, "ok", 1, 0.01, 0.01, None),
        ("k2", "judge", "j", "p4", "judge-m", 100, 10, False, True, "ok", 1, 0.005, 0.005, None),
        ("k3", "judge", "j", "p4", "judge-m", 100, 10, True, False, "ok", 0, 0.01, 0.0, None),
        ("k4", "judge", "j", "p3", "judge-m", None, None, False, True, "pending", 1, 0.0, 0.0, None),
        ("k5", "generation", "two_models", "prompt-1", "gen-m", 50, 500, False, False, "ok", 1, 0.04, 0.04, None),
        ("k6", "generation", "two_models", "prompt-1", "gen-m", None, None, False, False, "failed", 3, 0.0, 0.0, "HTTP 500"),
    ]
    frame = pd.DataFrame(rows, columns=list(USAGE)).astype(USAGE)
    report = costs.cost_ledger(frame, annotations(), final_labels(), routing(), PRICES)
    ledger = report[report["section"] == "ledger"].set_index("item")
    assert ledger.loc["llm: judge-m judge (live)", "total_usd"] == pytest.approx(0.01)
    batch = ledger.loc["llm: judge-m judge (batch)"]
    assert batch["quantity"] == 2 and batch["total_usd"] == pytest.approx(0.005) and "1 pending" in batch["note"]
    cached = ledger.loc["llm: judge-m judge (cached)"]
    assert cached["total_usd"] == 0.0 and "$0.0100 when bought" in cached["note"]
    assert "1 failed" in ledger.loc["llm: gen-m generation (live)", "note"]
    shared = 0.04 / 4  # generation is per prompt: shared equally over the 4 routed pairs
    assert ledger.loc["route: accepted", "total_usd"] == pytest.approx(0.01 + 2 * shared)
    assert ledger.loc["route: human", "total_usd"] == pytest.approx(0.005 + shared + 1.0)
    assert ledger.loc["route: spot_check", "total_usd"] == pytest.approx(shared + 3.5)
    llm_total = 0.01 + 0.005 + 0.04
    assert ledger.loc["total", "total_usd"] == pytest.approx(llm_total + 2.0 + 3.0)
    assert ledger.loc["ai_label", "total_usd"] == pytest.approx(0.015)  # judge calls only


def test_empty_batch_has_no_projection_and_no_invented_rates():
    empty_routing = routing().iloc[0:0]
    report = costs.cost_ledger(usage().iloc[0:0], annotations().iloc[0:0], final_labels().iloc[0:0], empty_routing, PRICES)
    ledger = report[report["section"] == "ledger"].set_index("item")
    assert ledger.loc["total", "total_usd"] == 0.0 and np.isnan(ledger.loc["per final label", "unit_usd"])
    proj = report[report["section"] == "projection"]
    assert len(proj) == 1 and np.isnan(proj["unit_usd"].item())


def test_bad_input_is_named():
    with pytest.raises(KeyError, match=r"llm_usage: missing column.*batch \(or batch_api\)"):
        costs.cost_ledger(usage().drop(columns="batch_api"), annotations(), final_labels(), routing(), PRICES)
    with pytest.raises(ValueError, match="per_label"):
        costs.HumanPrices(per_label=-1.0)


def test_plot_is_a_png():
    report = costs.cost_ledger(usage(), annotations(), final_labels(), routing(), PRICES)
    png = costs.cost_plot_png(report)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
