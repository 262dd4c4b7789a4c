from typing import Optional

import numpy as np
import pandas as pd
import pydantic

import dagster as dg

from prefpipe import schemas, settings
from prefpipe.assets._common import BATCH_ASSET, drop_batch, history_reward_model, md_table, with_batch
from prefpipe.assets.annotations import all_annotations, imported_annotations
from prefpipe.batches import load_batch_config
from prefpipe.guidelines import Guidelines, load_guidelines
from prefpipe.learning import active
from prefpipe.routing import RoutingConfig, build_human_queue, escalate_spot_checks, route_counts, route_pairs, spot_check_disagreement

GOLD_FILE = "gold.jsonl"


class RoutingRunConfig(dg.Config):
    accept_confidence: Optional[float] = pydantic.Field(None, description="Accept AI labels at this confidence or more (default: the rubric's ai_confidence_accept, 0.75).")
    spot_check_rate: Optional[float] = pydantic.Field(None, description="Share of accepted AI labels sent to a person anyway (default: the rubric's spot_check_rate, 0.05).")
    seed: int = pydantic.Field(0, description="Seed of the spot-check draw.")
    require_consistent: bool = pydantic.Field(True, description="Accept only verdicts consistent in both orders.")
    labels_per_pair: int = pydantic.Field(3, description="Human labels wanted per pair routed to people (experts give one).")
    budget_strategy: str = pydantic.Field(active.DEFAULT_STRATEGY, description=f"Active-learning strategy that spends a human budget: {', '.join(active.STRATEGIES)}.")
    primary_judge: Optional[str] = pydantic.Field(None, description="Judge whose verdicts are routed (default: the first in ai_labels).")


def routing_config(config: RoutingRunConfig, batch_id: str, guidelines: Guidelines | None = None) -> RoutingConfig:
    g = guidelines or load_guidelines()
    return RoutingConfig(
        accept_confidence=config.accept_confidence if config.accept_confidence is not None else g.threshold("ai_confidence_accept", 0.75),
        spot_check_rate=config.spot_check_rate if config.spot_check_rate is not None else g.threshold("spot_check_rate", 0.05),
        seed=config.seed,
        require_consistent=config.require_consistent,
        human_budget=load_batch_config(settings.batch_dir(batch_id)).human_budget,
        labels_per_pair=config.labels_per_pair,
        budget_strategy=config.budget_strategy,
    )


def primary_labels(ai_labels: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """One judge's rows: the one routing decides on."""
    if ai_labels.empty:
        return ai_labels
    name = judge or ai_labels["judge"].iloc[0]
    if name not in set(ai_labels["judge"]):
        raise ValueError(f"routing config: field 'primary_judge': no verdicts of judge {name!r} (judges: {', '.join(sorted(set(ai_labels['judge'])))})")
    return ai_labels[ai_labels["judge"] == name]


@dg.asset(**BATCH_ASSET, group_name="labelling")
def routing(context: dg.AssetExecutionContext, config: RoutingRunConfig, ai_labels: pd.DataFrame, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """Who decides each pair. A confident AI label (>= 0.75, the same verdict in both orders) is
    accepted; a seeded random 5% of those go to a person anyway as spot checks; unsure, unparsed,
    failed and position-inconsistent verdicts go to people; a spot check where people disagree
    with the AI goes to an expert, whose answer is final. With a human budget (batch.json
    `human_budget`), active learning chooses which pairs people see. Every row records its reason.
    The metadata shows the spot-check disagreement rate: the honest estimate of the error in the
    accepted AI labels that nobody checked."""
    batch_id = context.partition_key
    cfg = routing_config(config, batch_id)
    pairs = drop_batch(response_pairs)
    model = None
    if cfg.human_budget is not None:  # the budget is spent by active learning: rank with what earlier batches taught
        model = history_reward_model(batch_id)
    routed = route_pairs(primary_labels(drop_batch(ai_labels), config.primary_judge), cfg, pairs=pairs, reward_model=model)
    annotations = all_annotations(batch_id, set(pairs["pair_id"]))
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
            "human_budget": cfg.human_budget if cfg.human_budget is not None else "none",
            "budget_ranked_by": ("reward model from earlier batches" if model is not None else "judge confidence") if cfg.human_budget is not None else "no budget",
        }
    )
    return with_batch(routed, schemas.ROUTING, batch_id, table="routing")


@dg.asset(**BATCH_ASSET, group_name="people")
def human_queue(context: dg.AssetExecutionContext, config: RoutingRunConfig, routing: pd.DataFrame, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """What people are asked to label, loaded into the annotation app's queue: expert escalations
    first, then spot checks, then the pairs routed to people (least confident first). Labels
    already imported for a pair count towards what it needs; the batch's gold questions
    (gold.jsonl: pairs with their right label) are loaded for the hidden gold checks. Re-running it
    never duplicates a task or touches an answer."""
    from prefpipe.annotate.pairs_file import read_pairs
    from prefpipe.annotate.store import AnnotationStore

    batch_id = context.partition_key
    g = load_guidelines()  # read once: the thresholds routed by and the version recorded on the tasks
    cfg = routing_config(config, batch_id, g)
    routed = drop_batch(routing)
    pairs = drop_batch(response_pairs)
    queue = build_human_queue(routed, cfg)
    imported = imported_annotations(batch_id, set(pairs["pair_id"]))
    have_people = imported[imported["role"] != "expert"].groupby("pair_id").size()
    have_expert = imported[imported["role"] == "expert"].groupby("pair_id").size()
    have = np.where(queue["route"] == "expert", queue["pair_id"].map(have_expert).fillna(0), queue["pair_id"].map(have_people).fillna(0))
    queue["labels_wanted"] = np.clip(queue["labels_wanted"].to_numpy(dtype="int64") - have.astype("int64"), 0, None)
    queue["enqueued"] = queue["enqueued"] & (queue["labels_wanted"] > 0)

    todo = queue[queue["enqueued"]].merge(pairs[["pair_id", "prompt", "response_a", "response_b"]], on="pair_id")
    gold_path = settings.batch_dir(batch_id) / GOLD_FILE
    gold = read_pairs(gold_path, gold=True) if gold_path.is_file() else None
    counts = {}
    if len(todo) or gold is not None:
        with AnnotationStore(settings.annotation_store_path()) as store:
            counts = store.enqueue(
                batch_id, todo, per_item=cfg.labels_per_pair, guideline_version=g.version, rubric=g.rubric_dict(),
                gold=gold, dimension_scale=g.dimension_scale,
            )
    context.add_output_metadata(
        {
            "tasks_enqueued": int(queue["enqueued"].sum()),
            "labels_wanted": int(queue.loc[queue["enqueued"], "labels_wanted"].sum()),
            "already_labelled_by_import": int((~queue["enqueued"] & (queue["route"] != "over_budget")).sum()),
            "gold_pairs": 0 if gold is None else len(gold),
            "store": dg.MetadataValue.json(counts),
        }
    )
    return with_batch(queue, schemas.HUMAN_QUEUE, batch_id, table="human_queue")
