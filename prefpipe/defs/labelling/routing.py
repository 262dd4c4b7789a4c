"""The `routing` asset: who decides each pair; and its spot-check disagreement check."""

import dagster as dg
import pandas as pd
import pyarrow.compute as pc

from prefpipe.core import pair_codes, schemas
from prefpipe.core.routing import route_counts
from prefpipe.core.spot_checks import SpotCheckEstimate, escalate_spot_checks, spot_check_disagreement
from prefpipe.defs.common import (
    BATCH_ASSET, WARN, batch_check, check_threshold, drop_batch, history_reward_model, md_table, pair_texts, user_errors, with_batch,
)
from prefpipe.defs.people.annotation_sources import all_annotations
from prefpipe.defs.resources import AnnotationStoreResource, BatchFolders, GuidelinesFolder, RoutingSettings, WarehouseReader
from prefpipe.errors import PrefpipeError
from prefpipe.learning.budget import route_pairs


def primary_labels(ai_labels: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """One judge's rows: the one routing decides on. The judges are told apart in Arrow (a batch
    has a million verdicts and a judge or two)."""
    if ai_labels.empty:
        return ai_labels
    name = judge or ai_labels["judge"].iloc[0]
    judges = pair_codes.text_array(ai_labels["judge"])
    present = pc.unique(judges).to_pylist()
    if name not in present:
        listed = ", ".join(sorted(j for j in present if j is not None))
        raise PrefpipeError(f"routing_settings: field 'primary_judge': no verdicts of judge {name!r} (judges: {listed})")
    mine = pc.fill_null(pc.equal(judges, name), False)
    return ai_labels if pc.all(mine).as_py() else ai_labels[mine.to_numpy(zero_copy_only=False)]


AI_LABEL_COLUMNS = ["batch_id", "pair_id", "judge", "label", "status", "confidence"]
"""What routing reads of ai_labels: not the judges' raw answers, a third of the table at a million pairs."""
LIVE_PAIR_IDS = dg.AssetIn("response_pairs", metadata={"columns": ["batch_id", "pair_id", "dropped"]})
"""What routing reads of response_pairs (with a human budget it reads the texts as well, by pair_texts)."""


@dg.asset(**BATCH_ASSET, group_name="labelling", ins={"response_pairs": LIVE_PAIR_IDS, "ai_labels": dg.AssetIn(metadata={"columns": AI_LABEL_COLUMNS})})
@user_errors
def routing(
    context: dg.AssetExecutionContext, ai_labels: pd.DataFrame, response_pairs: pd.DataFrame, routing_settings: RoutingSettings,
    batch_folders: BatchFolders, guidelines_folder: GuidelinesFolder, annotation_store: AnnotationStoreResource,
    warehouse_reader: WarehouseReader,
) -> pd.DataFrame:
    """Who decides each pair. A confident AI label (>= 0.75, the same verdict in both orders) is
    accepted; a seeded random 5% of those go to a person anyway as spot checks; unsure, unparsed,
    failed and position-inconsistent verdicts go to people; a spot check where people disagree
    with the AI goes to an expert, whose answer is final. With a human budget (batch.json
    `human_budget`), active learning chooses which pairs people see. Every row records its reason.
    The metadata shows the spot-check disagreement rate: the honest estimate of the error in the
    accepted AI labels that nobody checked."""
    batch_id = context.partition_key
    cfg = routing_settings.rules(guidelines_folder.load(), batch_folders.config(batch_id))
    pairs = drop_batch(response_pairs)
    model = None
    if cfg.human_budget is not None:  # the budget is spent by active learning: rank with what earlier batches taught, and by the texts
        model = history_reward_model(warehouse_reader, batch_id)
        pairs = pair_texts(warehouse_reader, batch_id, pairs)
    routed = route_pairs(primary_labels(drop_batch(ai_labels), routing_settings.primary_judge), cfg, pairs=pairs, reward_model=model)
    annotations = all_annotations(batch_id, pairs["pair_id"], batch_folders, annotation_store)
    experts = escalate_spot_checks(routed, annotations)
    routed = pd.concat([routed[~routed["pair_id"].isin(experts["pair_id"])], experts], ignore_index=True)
    counts = route_counts(routed)
    spot = spot_check_disagreement(routed, annotations)
    context.add_output_metadata(
        {
            **{f"route_{k}": v for k, v in counts.items()},
            "spot_check_disagreement": spot.rate,
            "spot_check_disagreement_ci": f"{spot.ci_low:.3f}-{spot.ci_high:.3f}" if spot.n_checked else "no spot check labelled yet",
            "spot_check_statement": spot.statement,
            "reasons": md_table(routed.groupby(["route", "reason"]).size().rename("pairs").reset_index()),
            "accept_confidence": cfg.accept_confidence,
            "spot_check_rate": cfg.spot_check_rate,
            "labels_per_pair": cfg.labels_per_pair,
            "human_budget": cfg.human_budget if cfg.human_budget is not None else "none",
            "budget_ranked_by": ("reward model from earlier batches" if model is not None else "judge confidence") if cfg.human_budget is not None else "no budget",
        }
    )
    return with_batch(routed, schemas.ROUTING, batch_id, table="routing")


def spot_check_result(estimate: SpotCheckEstimate, max_rate: float) -> dg.AssetCheckResult:
    """Disagreement on labelled spot checks at most `max_rate` (WARN above), with its Wilson interval."""
    metadata = {"max_spot_check_disagreement": max_rate, "spot_checks_labelled": estimate.n_checked,
                "disagreements": estimate.n_disagree, "statement": estimate.statement}
    if estimate.n_checked == 0:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**metadata, "note": "no spot check labelled yet"})
    metadata.update({"disagreement_rate": estimate.rate, "wilson_ci_low": estimate.ci_low, "wilson_ci_high": estimate.ci_high,
                     "confidence_level": estimate.confidence_level})
    return dg.AssetCheckResult(passed=bool(estimate.rate <= max_rate), severity=WARN, metadata=metadata)


@batch_check("routing", additional_ins={"human_annotations": dg.AssetIn("human_annotations")})
def spot_check_disagreement_low(routing: pd.DataFrame, human_annotations: pd.DataFrame, guidelines_folder: GuidelinesFolder) -> dg.AssetCheckResult:
    """People agree with the accepted AI labels they spot-checked: the directional disagreement
    rate is at most `max_spot_check_disagreement` (default 15%), with its 95% Wilson interval.
    Spot checks are a random sample of the accepted AI labels, so above it (WARN) the labels
    nobody checked are that wrong too: raise `ai_confidence_accept` or improve the judge."""
    estimate = spot_check_disagreement(drop_batch(routing), drop_batch(human_annotations))
    return spot_check_result(estimate, check_threshold(guidelines_folder.load(), "max_spot_check_disagreement"))
