from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prefpipe.reports import plots
from prefpipe.reports.judge_card import judge_report_card
from prefpipe.core.staleness import label_versions
from prefpipe_tests.reports.pandalm import pandalm_frames


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as im:
        im.verify()
        return Image.open(io.BytesIO(png)).size


def _reliability(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    composite = rng.uniform(0.2, 1.0, n)
    return pd.DataFrame({"annotator_id": [f"a{i}" for i in range(n)], "composite": composite,
                         "gold_accuracy": rng.uniform(0, 1, n), "majority_agreement": rng.uniform(0, 1, n),
                         "kept": composite >= 0.6})


def test_every_figure_renders_from_real_batch_rows(shared_data):
    f = pandalm_frames(shared_data)
    card = judge_report_card(f["ai_labels"], f["final_labels"], f["response_pairs"])
    agreement = pd.DataFrame({"metric": ["krippendorff_alpha", "cohen_kappa"], "scope": ["batch", "a|b"],
                              "value": [0.87, 0.85], "ci_low": [0.85, np.nan], "ci_high": [0.9, np.nan]})
    routing = f["response_pairs"][["pair_id"]].assign(route=np.where(np.arange(999) % 3 == 0, "human", "accepted"))
    versions = label_versions({k: v.assign(batch_id="demo") for k, v in f.items() if k in ("ai_labels", "human_annotations")})
    figures = [
        plots.reliability_plot(_reliability(3)),
        plots.label_distribution_plot({"final (human)": f["final_labels"]["label"], "ai": f["ai_labels"]["label"]}),
        plots.agreement_plot(agreement),
        plots.judge_bias_plot(card),
        plots.cost_per_route_plot(plots.cost_by_route(routing, f["ai_labels"], f["human_annotations"], human_unit_usd=0.4)),
        plots.version_plot(versions),
    ]
    for png in figures:
        width, height = _size(png)
        assert width == 990 and height > 150


def test_many_annotators_show_the_least_reliable_and_grow_the_figure():
    small = _size(plots.reliability_plot(_reliability(3)))
    big = _size(plots.reliability_plot(_reliability(200), max_annotators=40))
    assert big[1] > small[1] and big[1] < 20 * small[1]


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plots.reliability_plot(pd.DataFrame()),
        lambda: plots.label_distribution_plot({}),
        lambda: plots.agreement_plot(pd.DataFrame(columns=["metric", "scope", "value", "ci_low", "ci_high"])),
        lambda: plots.judge_bias_plot(pd.DataFrame()),
        lambda: plots.cost_per_route_plot(pd.DataFrame()),
        lambda: plots.version_plot(pd.DataFrame()),
    ],
)
def test_no_data_still_gives_a_picture_that_says_so(draw):
    width, height = _size(draw())
    assert width == 990 and height < 250


def test_cost_by_route_counts_judge_and_human_cost_per_route():
    routing = pd.DataFrame({"pair_id": ["p1", "p2", "p3"], "route": ["accepted", "human", "human"]})
    ai = pd.DataFrame({"pair_id": ["p1", "p2", "p3", "p3"], "cost_usd": [0.01, 0.01, 0.02, np.nan]})
    human = pd.DataFrame({"pair_id": ["p2", "p2", "p3", "p3"], "label": ["A>B", "A>B", None, "B>A"]})
    out = plots.cost_by_route(routing, ai, human, human_unit_usd=0.5).set_index("route")
    assert out.loc["accepted", ["n_pairs", "ai_usd", "human_usd"]].tolist() == [1, 0.01, 0.0]
    assert out.loc["human", "ai_usd"] == pytest.approx(0.03)
    assert out.loc["human", "human_usd"] == pytest.approx(1.5)  # three labels; the skip is free
    assert out.loc["human", "usd_per_pair"] == pytest.approx(1.53 / 2)
    unknown = plots.cost_by_route(routing, ai, human, human_unit_usd=None).set_index("route")
    assert np.isnan(unknown.loc["human", "total_usd"]) and unknown.loc["accepted", "total_usd"] == pytest.approx(0.01)


def test_arrow_backed_text_gives_the_same_costs_and_figures():
    """The warehouse loader's frames (text in Arrow): pairs matched by id without a pandas groupby,
    a pair routed twice counted on both rows, labels counted without a Python str each."""
    routing = pd.DataFrame({"pair_id": ["p2", "p1", None, "p3", "p2"], "route": ["human", "accepted", "human", None, "spot_check"]}, index=[9, 3, 5, 7, 1])
    ai = pd.DataFrame({"pair_id": ["p1", "p2", "p3", "p3", None, "p9"], "cost_usd": [0.01, 0.001125, 0.02, np.nan, 0.5, 0.7]})
    human = pd.DataFrame({"pair_id": ["p2", "p2", "p3", "p9", None], "label": ["A>B", "A>B", None, "B>A", "A>B"]})
    arrow = lambda df: df.astype({c: pd.StringDtype("pyarrow") for c in df.columns if df[c].dtype == object})  # noqa: E731
    plain = plots.cost_by_route(routing, ai, human, human_unit_usd=0.5)
    assert plain.set_index("route").loc["human", "n_pairs"] == 2 and plain.set_index("route").loc["spot_check", "human_usd"] == 1.0
    pd.testing.assert_frame_equal(plots.cost_by_route(arrow(routing), arrow(ai), arrow(human), human_unit_usd=0.5), plain,
                                  check_exact=True, check_dtype=False, check_index_type=False)
    labels = {"final": pd.Series(["A>B", None, "B>>A", "A>B", "odd"]), "ai": pd.Series(["A=B", "A>B"])}
    assert plots.label_distribution_plot({k: arrow(v.to_frame())[0] for k, v in labels.items()}) == plots.label_distribution_plot(labels)


def test_cost_by_route_sums_a_pair_with_one_verdict_as_pandas_does():
    """One verdict a pair (the usual batch) skips the groupby: the same sums, to the bit (a sum of
    -0.0 is 0.0), and verdicts without a cost (imported ones) cost NaN without being matched."""
    routing = pd.DataFrame({"pair_id": ["p1", "p2", "p3", "p4", None], "route": ["accepted", "human", "human", "spot_check", "human"]})
    one = pd.DataFrame({"pair_id": ["p3", "p1", "p2", "zz"], "cost_usd": [-0.0, 0.1, np.nan, 0.3]})
    twice = pd.concat([one, pd.DataFrame({"pair_id": ["p3"], "cost_usd": [np.nan]})], ignore_index=True)  # a pair judged twice: the groupby path
    human = pd.DataFrame({"pair_id": ["p2", "p4"], "label": ["A>B", "B>A"]})
    fast, slow = (plots.cost_by_route(routing, ai, human, human_unit_usd=0.5) for ai in (one, twice))
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert fast.set_index("route")["ai_usd"].to_dict() == {"accepted": 0.1, "human": 0.0, "spot_check": 0.0}
    unpriced = plots.cost_by_route(routing, one.assign(cost_usd=np.nan), human, human_unit_usd=0.5)
    assert (unpriced["ai_usd"] == 0.0).all() and unpriced["human_usd"].tolist() == [0.0, 0.5, 0.5]
