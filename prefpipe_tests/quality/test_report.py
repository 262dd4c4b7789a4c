"""The agreement report on the PandaLM demo batch and on undefined input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.quality import agreement_report
from prefpipe.core.schemas import AGREEMENT_REPORT, conform
from prefpipe_tests.quality._data import load_pandalm


def test_demo_batch_report(shared_data) -> None:
    report = agreement_report(load_pandalm(shared_data), n_boot=300, seed=0)
    assert list(report.columns) == list(AGREEMENT_REPORT)
    conform(report, AGREEMENT_REPORT, name="agreement_report")  # dtypes convert cleanly
    by = report.set_index(["metric", "scope"])
    for metric in ("raw_agreement", "directional_agreement", "fleiss_kappa", "krippendorff_alpha_ordinal", "krippendorff_alpha_nominal"):
        row = by.loc[(metric, "batch")]
        assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["n_items"] == 999
    assert by.loc[("fleiss_kappa", "batch"), "band"] == "almost perfect"
    assert by.loc[("fleiss_kappa", "batch"), "interpretation"] == "ready for training"
    assert by.loc[("raw_agreement", "batch"), "band"] == ""
    kappas = by.loc["cohens_kappa"]["value"].round(2).to_dict()
    assert kappas == {"annotator1|annotator2": 0.85, "annotator1|annotator3": 0.88, "annotator2|annotator3": 0.86}
    assert (by.loc["cohens_kappa"]["ci_low"] < by.loc["cohens_kappa"]["value"]).all()


def test_undefined_figures_are_nan_with_a_reason() -> None:
    df = pd.DataFrame({"pair_id": ["p1", "p2"], "annotator_id": ["a", "a"], "label": ["A>B", "B>A"]})
    report = agreement_report(df, n_boot=50)
    assert len(report) == 5 and report["value"].isna().all()
    assert (report["band"] == "undefined").all()
    assert report["interpretation"].str.startswith("undefined: ").all()
    assert "no pair_id holds two or more labels" in report.loc[0, "interpretation"]


def test_numeric_labels_add_interval_alpha_and_skip_directional() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "pair_id": np.repeat(np.arange(50), 2),
            "annotator_id": ["a", "b"] * 50,
            "label": rng.integers(0, 4, 100),
        }
    )
    metrics = agreement_report(df, n_boot=20)["metric"].tolist()
    assert "krippendorff_alpha_interval" in metrics and "directional_agreement" not in metrics
