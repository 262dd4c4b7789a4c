"""Every asset check passing and failing: the evaluation functions on built frames, then the
checks in real runs of small batches (partitioned results, the blocking export check)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import dagster as dg

from prefpipe.core.guidelines import load_guidelines
from prefpipe.defs.common import CHECK_THRESHOLDS, check_threshold
from prefpipe.defs.labelling.ai_labels import judge_quality_result
from prefpipe.defs.labelling.routing import spot_check_result
from prefpipe.defs.outputs.preference_dataset import empty_response_result, export_result
from prefpipe.defs.quality.annotator_reliability import gold_flag_result
from prefpipe.defs.quality.final_labels import drift_result
from prefpipe.defs.reports.agreement_report import alpha_result
from prefpipe.core import schemas
from prefpipe.core.spot_checks import spot_check_disagreement
from prefpipe_tests.defs.conftest import make_batch, project_data, write_jsonl  # noqa: F401 (project_data: fixture)

def all_checks():
    from prefpipe.definitions import build_definitions

    return build_definitions().asset_checks


META = lambda result, key: getattr(result.metadata[key], "value", result.metadata[key])  # noqa: E731


# ------------------------------------------------------------------------------------------------
# agreement


def agreement(alpha: float | None, band: str = "substantial", interpretation: str = "usable with majority voting") -> pd.DataFrame:
    rows = [{"metric": "fleiss_kappa", "scope": "batch", "value": 0.9, "ci_low": 0.8, "ci_high": 0.95, "n_items": 50, "band": "almost perfect", "interpretation": "x"}]
    if alpha is not None:
        rows.append({"metric": "krippendorff_alpha_ordinal", "scope": "batch", "value": alpha, "ci_low": alpha - 0.1, "ci_high": alpha + 0.05,
                     "n_items": 50, "band": band, "interpretation": interpretation})
    return pd.DataFrame(rows)


def test_alpha_passes_at_the_threshold_and_warns_under_it_with_the_band():
    assert alpha_result(agreement(0.667), 0.667).passed
    low = alpha_result(agreement(0.45, "moderate", "revise the guidelines"), 0.667)
    assert not low.passed and low.severity == dg.AssetCheckSeverity.WARN
    assert META(low, "band") == "moderate" and META(low, "interpretation") == "revise the guidelines"
    assert META(low, "krippendorff_alpha_ordinal") == pytest.approx(0.45) and META(low, "ci_95") == "0.350-0.500"


def test_alpha_without_human_labels_passes_with_a_note_and_nan_fails():
    none = alpha_result(agreement(None), 0.667)
    assert none.passed and "no human labels" in META(none, "note")
    nan = alpha_result(agreement(float("nan")), 0.667)
    assert not nan.passed and "could not be computed" in META(nan, "note")


# ------------------------------------------------------------------------------------------------
# gold


def reliability(flags: dict[str, bool]) -> pd.DataFrame:
    return pd.DataFrame({"annotator_id": list(flags), "gold_answers": 6, "gold_accuracy": [0.3 if f else 0.9 for f in flags.values()],
                         "composite": 0.5, "n_labels": 40, "gold_flagged": list(flags.values())})


def gold_answers(rows: list[tuple[str, str]], pending: int = 0) -> pd.DataFrame:
    """Gold answers (annotator, guideline version); the first `pending` have no key to score against."""
    return pd.DataFrame({"annotator_id": [a for a, _ in rows], "is_gold": True, "guideline_version": [v for _, v in rows],
                         "label": "A>B", "gold_label": [None if i < pending else "A>B" for i in range(len(rows))]})


def test_gold_flags_warn_listing_annotators_and_their_gold_under_old_guidelines():
    result = gold_flag_result(reliability({"ann1": False, "ann2": True, "ann3": True}),
                                     gold_answers([("ann2", "g1"), ("ann2", "g2"), ("ann3", "g2"), ("ann1", "g1")]), "g2")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert META(result, "flagged") == ["ann2", "ann3"]
    assert META(result, "gold_answers_under_older_guideline") == 2
    assert "| ann2 " in META(result, "flagged_table") and "older guideline" in META(result, "note")
    assert META(result, "gold_answers_awaiting_recheck") == 0 and "prefpipe gold" not in META(result, "note")


def test_gold_answers_awaiting_a_key_recheck_are_counted_with_what_to_do():
    result = gold_flag_result(reliability({"ann1": False}), gold_answers([("ann1", "g2")] * 3, pending=2), "g2")
    assert result.passed and META(result, "gold_answers_awaiting_recheck") == 2
    assert "prefpipe gold list --stale" in META(result, "note")


def test_no_flag_passes():
    result = gold_flag_result(reliability({"ann1": False}), gold_answers([("ann1", "g2")]), "g2")
    assert result.passed and META(result, "flagged") == []


# ------------------------------------------------------------------------------------------------
# judge


def verdicts(statuses: list[str], judge: str = "j1", both_orders: bool = True) -> pd.DataFrame:
    label = lambda s: "A>B" if s in ("ok", "inconsistent") else None  # noqa: E731
    return pd.DataFrame({"judge": judge, "status": statuses, "label_ab": [label(s) for s in statuses],
                         "label_ba": [("B>A" if s == "inconsistent" else label(s)) if both_orders else None for s in statuses]})


def test_judge_rates_under_thresholds_pass():
    result = judge_quality_result(verdicts(["ok"] * 9 + ["unparsed"]), 0.10, 0.20)
    assert result.passed and META(result, "unparsed_rate") == pytest.approx(0.1)


def test_unparsed_or_inconsistent_rate_over_threshold_warns_for_that_judge():
    frame = pd.concat([verdicts(["ok"] * 8 + ["unparsed"] * 2, "loose"), verdicts(["ok"] * 7 + ["inconsistent"] * 3, "flippy"),
                       verdicts(["ok"] * 10, "good")], ignore_index=True)
    result = judge_quality_result(frame, 0.10, 0.20)
    assert not result.passed and META(result, "judges_over_threshold") == ["flippy", "loose"]
    # inconsistency is counted over verdicts judged in both orders: 3 of the 28 with both orders
    assert META(result, "position_inconsistent_rate") == pytest.approx(3 / 28)


def test_single_order_verdicts_have_no_inconsistency_rate_and_empty_labels_pass():
    result = judge_quality_result(verdicts(["ok"] * 5, both_orders=False), 0.10, 0.20)
    assert result.passed and np.isnan(META(result, "position_inconsistent_rate"))
    assert judge_quality_result(schemas.empty(schemas.AI_LABELS), 0.1, 0.2).passed


# ------------------------------------------------------------------------------------------------
# drift


def test_same_distribution_passes_and_a_shift_warns_with_its_tvd():
    others = pd.Series({"A>B": 40, "B>A": 40, "A=B": 20})
    same = drift_result(pd.Series(["A>B"] * 4 + ["B>A"] * 4 + ["A=B"] * 2), others, 3, 0.15)
    assert same.passed and META(same, "total_variation_distance") == pytest.approx(0.0)
    shifted = drift_result(pd.Series(["A>B"] * 8 + ["B>A"] * 2 + [None]), others, 3, 0.15)
    # this batch 0.8/0.2/0.0 against 0.4/0.4/0.2: half the absolute differences = 0.4
    assert not shifted.passed and META(shifted, "total_variation_distance") == pytest.approx(0.4)
    assert META(shifted, "labels") == 10 and META(shifted, "other_batches") == 3 and 0 <= META(shifted, "chi_square_p_value") < 0.05


def test_first_batch_passes_with_a_note():
    result = drift_result(pd.Series(["A>B", "B>A"]), pd.Series(dtype="int64"), 0, 0.15)
    assert result.passed and META(result, "note") == "no previous batch to compare with"


# ------------------------------------------------------------------------------------------------
# spot checks


def spot_frames(n_checks: int, n_disagree: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    pairs = [f"p{i}" for i in range(n_checks)]
    routing = schemas.conform(pd.DataFrame({"pair_id": pairs, "route": "spot_check", "reason": "spot_check", "ai_label": "A>B",
                                            "ai_confidence": 0.9, "ai_status": "ok", "labels_wanted": 1}), schemas.ROUTING)
    people = ["B>A" if i < n_disagree else "A>>B" for i in range(n_checks)]
    annotations = pd.DataFrame({"pair_id": pairs, "annotator_id": "ann1", "label": people, "role": "annotator", "is_gold": False})
    return routing, annotations


def test_spot_check_disagreement_over_threshold_warns_with_the_wilson_interval():
    estimate = spot_check_disagreement(*spot_frames(10, 4))
    result = spot_check_result(estimate, 0.15)
    assert not result.passed and META(result, "disagreement_rate") == pytest.approx(0.4)
    assert META(result, "wilson_ci_low") < 0.4 < META(result, "wilson_ci_high") and META(result, "spot_checks_labelled") == 10


def test_agreeing_spot_checks_pass_and_none_labelled_passes_with_a_note():
    assert spot_check_result(spot_check_disagreement(*spot_frames(10, 1)), 0.15).passed  # A>>B agrees with A>B
    none = spot_check_result(spot_check_disagreement(*spot_frames(0, 0)), 0.15)
    assert none.passed and none.metadata["note"].value == "no spot check labelled yet"


# ------------------------------------------------------------------------------------------------
# the export


def export_rows(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": [f"q{i}:0" for i in range(n)], "prompt": "Say hi.", "chosen": [f"Hi {i}!" for i in range(n)],
                         "rejected": "no.", "label": "A>B", "margin": 0.5, "label_source": "human:majority", "guideline_version": "g1"})


@pytest.mark.parametrize("breakage, expected", [
    (lambda df: df.iloc[0:0], "no preference rows"),
    (lambda df: df.drop(columns=["rejected"]), "missing column(s): rejected"),
    (lambda df: df.assign(chosen=[None, "a", "b"]), "`chosen` is missing or not text"),
    (lambda df: df.assign(prompt=["  ", "x", "y"]), "empty `prompt`"),
    (lambda df: df.assign(rejected=df["chosen"]), "`chosen` equals `rejected`"),
    (lambda df: df.assign(margin=[np.inf, 0.1, 0.2]), "margin that is not a finite number"),
    (lambda df: df.assign(margin=[-0.1, 0.1, 0.2]), "margin that is not a finite number"),
    (lambda df: df.assign(pair_id=["q0:0", "q0:0", "q2:0"]), "repeated `pair_id`"),
])
def test_a_malformed_export_fails_with_error_severity(breakage, expected):
    result = export_result(breakage(export_rows()))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert expected in result.description and expected in META(result, "problems")


def test_a_good_export_passes_and_a_missing_margin_is_allowed():
    assert export_result(export_rows()).passed
    assert export_result(export_rows().assign(margin=[np.nan, 0.0, 1.0])).passed


def test_an_empty_response_warns_without_blocking():
    rows = export_rows().assign(rejected=["", "no.", "   "])
    assert export_result(rows).passed  # text, not malformed
    result = empty_response_result(rows)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN and META(result, "empty_rejected") == 2
    assert empty_response_result(export_rows()).passed


def test_the_blocking_check_is_declared_blocking_and_every_check_has_a_description(data_dir):
    from prefpipe.definitions import build_definitions

    graph = build_definitions().get_repository_def().asset_graph
    specs = {key.name: graph.get(key) for key in graph.asset_check_keys}
    assert set(specs) == {c.name for cd in all_checks() for c in cd.check_keys}
    assert specs["export_is_well_formed"].blocking and not specs["labels_under_current_versions"].blocking
    assert all(len(spec.description or "") > 80 for spec in specs.values())


# ------------------------------------------------------------------------------------------------
# in real runs


def run_with_checks(batch_id: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Every asset and every check for one batch, as the pipeline job runs them."""
    from prefpipe.definitions import build_definitions

    from dagster._core.storage.defs_state import base

    if batch_id not in instance.get_dynamic_partitions("batches"):
        instance.add_dynamic_partitions("batches", [batch_id])
    base._current_storage.set(None)  # a run's short-lived instance may leave its storage registered (see conftest)
    defs = build_definitions()
    return dg.materialize([*defs.assets, *defs.asset_checks], partition_key=batch_id, instance=instance,
                          resources=defs.resources, raise_on_error=False)


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.mark.slow
def test_checks_run_per_batch_in_the_pipeline_and_the_export_check_blocks(project_data):
    instance = dg.DagsterInstance.ephemeral()
    first = run_with_checks("mini", instance)
    assert first.success
    got = evaluations(first)
    assert set(got) == {c.name for cd in all_checks() for c in cd.check_keys}
    assert {e.partition for name, e in got.items() if name != "batches_under_current_guidelines"} == {"mini"}
    # the small batch's judge file has one unreadable verdict in six: over the 10% default
    assert not got["judge_verdicts_readable_and_consistent"].passed
    assert got["judge_verdicts_readable_and_consistent"].metadata["unparsed_rate"].value == pytest.approx(1 / 6)
    passing = set(got) - {"judge_verdicts_readable_and_consistent"}
    assert all(got[name].passed for name in passing), {n: got[n].metadata for n in passing if not got[n].passed}
    assert got["label_distribution_stable"].metadata["note"].value == "no previous batch to compare with"

    # a batch where every person says "tie": no preference to export (nothing malformed, nothing waiting:
    # a warning that does not block; nothing is published) and a drifted distribution
    folder = make_batch(project_data, "ties")
    write_jsonl(folder / "annotations.jsonl", [{"pair_id": f"q{i}:0", "annotator_id": f"ann{k}", "label": "0"} for i in range(6) for k in range(3)])
    second = run_with_checks("ties", instance)
    assert second.success
    assert not (project_data / "exports" / "ties").exists()  # nothing published
    got = evaluations(second)
    assert not got["export_is_well_formed"].passed and got["export_is_well_formed"].severity == dg.AssetCheckSeverity.WARN
    assert "no preference rows" in got["export_is_well_formed"].description
    drift = got["label_distribution_stable"]
    assert not drift.passed and drift.partition == "ties" and drift.metadata["other_batches"].value == 1
    shares = {"A>B": 3 / 6, "B>A": 2 / 6, "A=B": 1 / 6}  # mini's final labels (majority of each pair)
    assert drift.metadata["total_variation_distance"].value == pytest.approx(1 - shares["A=B"])
    # instance records one result per partition
    key = dg.AssetCheckKey(dg.AssetKey("final_labels"), "label_distribution_stable")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    assert {(r.partition, r.status.value) for r in history} == {("mini", "SUCCEEDED"), ("ties", "FAILED")}


def test_thresholds_come_from_the_rubric(project_data):
    rubric = project_data / "guidelines" / "rubric.json"
    raw = json.loads(rubric.read_text())
    assert check_threshold(load_guidelines(), "max_unparsed_rate") == CHECK_THRESHOLDS["max_unparsed_rate"]
    raw["thresholds"]["max_unparsed_rate"] = 0.25
    rubric.write_text(json.dumps(raw))
    assert check_threshold(load_guidelines(), "max_unparsed_rate") == 0.25
    assert check_threshold(load_guidelines(), "min_krippendorff_alpha") == raw["thresholds"]["min_krippendorff_alpha"]
