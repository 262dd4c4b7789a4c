"""The `annotator_reliability` asset: how far each annotator can be trusted; and its check that
no annotator is flagged by gold."""

import dagster as dg
import pandas as pd

from prefpipe.annotate.gold import GoldPolicy
from prefpipe.core import schemas
from prefpipe.core.labels import SCALE
from prefpipe.defs.common import BATCH_ASSET, WARN, batch_check, check_md, drop_batch, md_image, md_table, user_errors, with_batch
from prefpipe.defs.resources import GuidelinesFolder
from prefpipe.quality.reliability import annotator_reliability as reliability_of
from prefpipe.reports.plots import reliability_plot


def annotator_labels(annotations: pd.DataFrame) -> pd.DataFrame:
    """Labels given by (non-expert) annotators: the ones reliability and agreement are about."""
    return annotations[(annotations["role"] == "annotator") & annotations["label"].notna()]


@dg.asset(**BATCH_ASSET, group_name="quality")
@user_errors
def annotator_reliability(context: dg.AssetExecutionContext, human_annotations: pd.DataFrame, guidelines_folder: GuidelinesFolder) -> pd.DataFrame:
    """How far each annotator can be trusted: gold accuracy, agreement with the majority of the
    OTHER annotators on the same pairs, mean time on task and the speed penalty (under 5 s a label
    counts against them), the composite score (0.4 gold + 0.3 agreement + 0.3 speed; a missing term
    is left out and the others reweighted), Dawid-Skene's accuracy estimate, and whether the gold
    rule (5+ gold answers, under 60% right) flags them. `kept` says whose labels count: everyone the
    gold questions did not flag. The composite (and the rubric's reliability_threshold line in the
    plot) is reported, not a filter: final labels weight each annotator by Dawid-Skene's fitted
    accuracy instead of dropping honest people who disagree on hard pairs."""
    batch_id = context.partition_key
    g = guidelines_folder.load()
    labels = annotator_labels(drop_batch(human_annotations))
    if labels.empty:
        table = schemas.empty(schemas.ANNOTATOR_RELIABILITY)
    else:
        table = reliability_of(
            labels, categories=SCALE,
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


def gold_flag_result(reliability: pd.DataFrame, human_annotations: pd.DataFrame, current_guideline: str) -> dg.AssetCheckResult:
    """No annotator flagged by gold (WARN listing them, with how many of their gold answers were
    made under an older guideline, and how many gold answers of the batch await a key re-check)."""
    flagged = reliability[reliability["gold_flagged"].fillna(False).astype(bool)]
    gold = human_annotations[human_annotations["is_gold"].fillna(False).astype(bool)]
    old = gold["guideline_version"].astype("string").ne(current_guideline).fillna(True)
    old_by = gold[old].groupby("annotator_id").size()
    table = flagged[["annotator_id", "gold_answers", "gold_accuracy", "composite", "n_labels"]].assign(
        gold_under_older_guideline=flagged["annotator_id"].map(old_by).fillna(0).astype(int)
    )
    metadata = {
        "annotators": len(reliability),
        "flagged": dg.MetadataValue.json(sorted(map(str, flagged["annotator_id"]))),
        "flagged_table": check_md(table),
        "gold_answers_under_older_guideline": int(old.sum()),
        "gold_answers_awaiting_recheck": int((gold["label"].notna() & gold["gold_label"].isna()).sum()),
    }
    notes = []
    if len(flagged) and int(table["gold_under_older_guideline"].sum()):
        notes.append("some flagged annotators answered gold under an older guideline (scored against that version's "
                     "keys): look at those answers before acting on the flag")
    if metadata["gold_answers_awaiting_recheck"]:
        notes.append("some gold answers were given to keys written under another guideline version: they count for "
                     "no one until an expert re-checks the keys (prefpipe gold list --stale)")
    if notes:
        metadata["note"] = "; ".join(notes) + " (docs/operations.md, gold re-check policy)"
    return dg.AssetCheckResult(passed=flagged.empty, severity=WARN, metadata=metadata)


@batch_check("annotator_reliability", additional_ins={"human_annotations": dg.AssetIn("human_annotations")})
def no_annotator_flagged_by_gold(
    annotator_reliability: pd.DataFrame, human_annotations: pd.DataFrame, guidelines_folder: GuidelinesFolder
) -> dg.AssetCheckResult:
    """No annotator of the batch is flagged by the gold rule (5+ gold answers, under 60% right).
    Failing (WARN) lists them: their labels are already left out of final labels; review them in
    the annotation app (unflag there if the gold items were wrong)."""
    return gold_flag_result(annotator_reliability, human_annotations, guidelines_folder.load().version)
