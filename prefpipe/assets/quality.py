from typing import Literal

import pandas as pd
import pydantic

import dagster as dg

from prefpipe import quality, schemas
from prefpipe.assets._common import BATCH_ASSET, drop_batch, md_image, md_table, with_batch
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.assets.routing import primary_labels
from prefpipe.guidelines import load_guidelines
from prefpipe.labels import SCALE
from prefpipe.quality.reliability import annotator_reliability as reliability_of, filter_annotations
from prefpipe.quality.report import agreement_report as agreement_rows
from prefpipe.reports.markdown import agreement_md
from prefpipe.reports.plots import agreement_plot, label_distribution_plot, reliability_plot
from prefpipe.routing import combine_final_labels


def annotator_labels(annotations: pd.DataFrame) -> pd.DataFrame:
    """Labels given by (non-expert) annotators: the ones reliability and agreement are about."""
    return annotations[(annotations["role"] == "annotator") & annotations["label"].notna()]


@dg.asset(**BATCH_ASSET, group_name="quality")
def annotator_reliability(context: dg.AssetExecutionContext, human_annotations: pd.DataFrame) -> pd.DataFrame:
    """How far each annotator can be trusted: gold accuracy, agreement with the majority of the
    OTHER annotators on the same pairs, mean time on task and the speed penalty (under 5 s a label
    counts against them), the composite score (0.4 gold + 0.3 agreement + 0.3 speed; a missing term
    is left out and the others reweighted), Dawid-Skene's accuracy estimate, and whether the gold
    rule (5+ gold answers, under 60% right) flags them. `kept` says whose labels count."""
    batch_id = context.partition_key
    g = load_guidelines()
    labels = annotator_labels(drop_batch(human_annotations))
    if labels.empty:
        table = schemas.empty(schemas.ANNOTATOR_RELIABILITY)
    else:
        table = reliability_of(
            labels, categories=SCALE,
            threshold=g.threshold("reliability_threshold", 0.6),
            min_gold=int(g.threshold("gold_min_answers", 5)),
            gold_pass=g.threshold("gold_min_accuracy", 0.6),
            gold_match=GoldPolicy.from_thresholds(g.thresholds).match,  # the app's rule: strength is judgement, direction is not
        )
        flagged_live = set(labels.loc[labels["flagged"].fillna(False).astype(bool), "annotator_id"])
        table["gold_flagged"] = table["gold_flagged"] | table["annotator_id"].isin(flagged_live)
        table["kept"] = table["kept"] & ~table["gold_flagged"]
    context.add_output_metadata(
        {
            "annotators": len(table),
            "kept": int(table["kept"].sum()),
            "gold_flagged": int(table["gold_flagged"].sum()),
            "reliability": md_table(table.sort_values("composite"), max_rows=40),
            "reliability_plot": md_image(reliability_plot(table, threshold=g.threshold("reliability_threshold", 0.6)), "annotator reliability"),
        }
    )
    return with_batch(table, schemas.ANNOTATOR_RELIABILITY, batch_id, table="annotator_reliability")


@dg.asset(**BATCH_ASSET, group_name="quality")
def filtered_annotations(context: dg.AssetExecutionContext, human_annotations: pd.DataFrame, annotator_reliability: pd.DataFrame) -> pd.DataFrame:
    """The human labels that count towards final labels: annotators under the reliability threshold
    or flagged by gold are left out (their labels stay in human_annotations, marked), and so are
    gold answers (gold pairs are checks, not data). Experts' answers pass through."""
    batch_id = context.partition_key
    everything = drop_batch(human_annotations)
    labelled = everything[everything["label"].notna() & ~everything["is_gold"].fillna(False).astype(bool)]
    people, experts = labelled[labelled["role"] == "annotator"], labelled[labelled["role"] == "expert"]
    if people.empty:
        kept, summary = people, {"labels_dropped": 0, "items_dropped": 0, "annotators_dropped": 0, "dropped_annotators": []}
    else:
        kept, summary = filter_annotations(people, drop_batch(annotator_reliability))
    out = pd.concat([kept, experts], ignore_index=True)
    context.add_output_metadata(
        {
            "labels_kept": len(out),
            "gold_answers_left_out": int(everything["is_gold"].fillna(False).sum()),
            "labels_dropped": int(summary["labels_dropped"]),
            "pairs_left_without_label": int(summary["items_dropped"]),
            "annotators_dropped": dg.MetadataValue.json(list(map(str, summary["dropped_annotators"]))),
        }
    )
    return with_batch(out, schemas.HUMAN_ANNOTATIONS, batch_id, table="filtered_annotations")


class FinalLabelsConfig(dg.Config):
    method: Literal["majority", "weighted", "dawid_skene"] = pydantic.Field(
        "majority", description="How people's labels become one: majority vote, reliability-weighted vote, or Dawid-Skene (EM over per-annotator confusion matrices)."
    )
    primary_judge: str | None = pydantic.Field(None, description="Judge whose accepted verdicts stand (default: the first in ai_labels).")


def aggregate(people: pd.DataFrame, method: str, reliability: pd.DataFrame) -> pd.DataFrame:
    """One label per pair from the people's labels, by the chosen method."""
    if people.empty:
        return pd.DataFrame({"pair_id": pd.Series(dtype="string"), "label": pd.Series(dtype="string"), "confidence": pd.Series(dtype="float64"), "n_labels": pd.Series(dtype="Int64"), "method": pd.Series(dtype="string")})
    if method == "majority":
        out = quality.majority_vote(people, categories=SCALE)
    elif method == "weighted":
        weights = reliability.set_index("annotator_id")["composite"].fillna(0.0)
        out = quality.weighted_vote(people, weights, categories=SCALE)
    else:
        out = quality.dawid_skene(people, categories=SCALE)
    return out.assign(method=method)


@dg.asset(**BATCH_ASSET, group_name="quality")
def final_labels(
    context: dg.AssetExecutionContext, config: FinalLabelsConfig, filtered_annotations: pd.DataFrame,
    annotator_reliability: pd.DataFrame, routing: pd.DataFrame, ai_labels: pd.DataFrame,
) -> pd.DataFrame:
    """One label per pair: an expert's answer is final; else the people's label, aggregated by
    majority vote, reliability-weighted vote or Dawid-Skene (run config `method`); else the AI label
    where it stands. A pair with none of these gets no label: nothing is invented."""
    batch_id = context.partition_key
    kept = drop_batch(filtered_annotations)
    people, experts = kept[kept["role"] == "annotator"], kept[kept["role"] == "expert"]
    human_final = aggregate(people, config.method, drop_batch(annotator_reliability))
    ai = primary_labels(drop_batch(ai_labels), config.primary_judge)
    final = combine_final_labels(drop_batch(routing), ai, human_final, experts, human_annotations=people)
    context.add_output_metadata(
        {
            "final_labels": len(final),
            "method": config.method,
            "by_source": dg.MetadataValue.json(final["source"].value_counts().to_dict()),
            "label_distribution": dg.MetadataValue.json(final["label"].value_counts().reindex(SCALE, fill_value=0).to_dict()),
            "label_distribution_plot": md_image(label_distribution_plot({"final": final["label"], "people": people["label"], "AI": ai["label"]}), "label distribution"),
            "mean_confidence": float(final["confidence"].mean()) if len(final) else float("nan"),
        }
    )
    return with_batch(final, schemas.FINAL_LABELS, batch_id, table="final_labels")


@dg.asset(**BATCH_ASSET, group_name="reports")
def agreement_report(context: dg.AssetExecutionContext, filtered_annotations: pd.DataFrame) -> pd.DataFrame:
    """How much the people who count agree, each figure with a 95% bootstrap interval (1,000 pair
    resamples) and what it means: raw and directional agreement, Fleiss' kappa, Krippendorff's
    alpha (ordinal, for the five-point scale, and nominal), and Cohen's kappa for every pair of
    annotators with 20+ shared pairs. Bands: 0.81+ almost perfect, ready for training; 0.61-0.80
    substantial, usable with majority voting; 0.41-0.60 moderate, revise the guidelines; 0.21-0.40
    fair, the task may be too subjective; under 0.21 slight, the task is broken."""
    batch_id = context.partition_key
    people = annotator_labels(drop_batch(filtered_annotations))
    if people.empty:
        report = schemas.empty(schemas.AGREEMENT_REPORT)
    else:
        report = agreement_rows(people, categories=SCALE, n_boot=1000, seed=0)
    batch_rows = report[report["scope"] == "batch"]
    metadata = {"report": dg.MetadataValue.md(agreement_md(report)), "plot": md_image(agreement_plot(report), "agreement with 95% intervals")}
    for row in batch_rows.itertuples():
        metadata[row.metric] = float(row.value) if pd.notna(row.value) else float("nan")
    alpha = batch_rows[batch_rows["metric"] == "krippendorff_alpha_ordinal"]
    if len(alpha):
        metadata["interpretation"] = str(alpha["interpretation"].iloc[0])
    context.add_output_metadata(metadata)
    return with_batch(report, schemas.AGREEMENT_REPORT, batch_id, table="agreement_report")
