import pandas as pd

import dagster as dg

from prefpipe import schemas, settings
from prefpipe.assets._common import BATCH_ASSET, drop_batch, md_image, with_batch
from prefpipe.dataset import preference_rows
from prefpipe.partitions import batches


@dg.asset(**BATCH_ASSET, group_name="outputs")
def preference_dataset(context: dg.AssetExecutionContext, final_labels: pd.DataFrame, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """The batch as training data in TRL's format: prompt, chosen, rejected, with a margin (label
    strength x confidence), where the label came from and its guideline version. Pairs whose final
    label is a tie carry no preference and are left out. Its blocking check must pass before
    `published_dataset` writes any file."""
    batch_id = context.partition_key
    rows = preference_rows(drop_batch(final_labels), drop_batch(response_pairs))
    context.add_output_metadata(
        {
            "rows": len(rows),
            "ties_left_out": int((final_labels["label"] == "A=B").sum()),
            "by_source": dg.MetadataValue.json(rows["label_source"].value_counts().to_dict()),
            "preview": dg.MetadataValue.md(rows.head(3)[["pair_id", "label", "margin", "label_source"]].to_markdown(index=False)),
        }
    )
    return with_batch(rows, schemas.PREFERENCE_DATASET, batch_id, table="preference_dataset")


@dg.asset(partitions_def=batches, group_name="outputs")
def published_dataset(
    context: dg.AssetExecutionContext, preference_dataset: pd.DataFrame, final_labels: pd.DataFrame, response_pairs: pd.DataFrame,
    ai_labels: pd.DataFrame, routing: pd.DataFrame, human_annotations: pd.DataFrame, annotator_reliability: pd.DataFrame,
    agreement_report: pd.DataFrame, cost_report: pd.DataFrame,
) -> dg.MaterializeResult:
    """The files people take away, written only once preference_dataset's blocking check passed:
    Parquet and JSONL in TRL's format with a dataset card under data/exports/<batch>/, and the
    batch's self-contained HTML report (agreement, reliability, judge report card, costs, labels by
    guideline version and what `prefpipe stale` says of the batch) under data/reports/<batch>.html.
    Files are replaced atomically: a failed write keeps the last ones."""
    from prefpipe.exports.dataset_card import dataset_card
    from prefpipe.exports.trl import to_trl, write_trl
    from prefpipe.reports.html import render_batch_report, write_batch_report
    from prefpipe.reports.judge_card import judge_report_card
    from prefpipe.reports.markdown import judge_card_md
    from prefpipe.reports.plots import judge_bias_plot
    from prefpipe.stale_cli import compute_view

    batch_id = context.partition_key
    trl = to_trl(preference_dataset, ai_labels=ai_labels, human_annotations=human_annotations, batch_id=batch_id)
    out_dir = settings.exports_dir() / batch_id
    files = write_trl(trl, out_dir)
    (out_dir / "README.md").write_text(
        dataset_card(trl, agreement_report=agreement_report, title=f"prefpipe preference dataset: batch {batch_id}"), encoding="utf-8"
    )
    card = judge_report_card(drop_batch(ai_labels), drop_batch(final_labels), drop_batch(response_pairs))
    tables = {
        "response_pairs": response_pairs, "ai_labels": ai_labels, "routing": routing, "human_annotations": human_annotations,
        "annotator_reliability": annotator_reliability, "final_labels": final_labels, "agreement_report": agreement_report,
        "cost_report": cost_report, "preference_dataset": preference_dataset,
    }
    stale, _, current = compute_view(context.instance, batch_id=batch_id, this_run=context.run.run_id)
    page = render_batch_report(batch_id, tables, current_guideline_version=current.guideline, stale=stale)
    report = write_batch_report(batch_id, page)
    return dg.MaterializeResult(
        metadata={
            "rows": len(trl),
            "parquet": dg.MetadataValue.path(str(files["parquet"])),
            "jsonl": dg.MetadataValue.path(str(files["jsonl"])),
            "report": dg.MetadataValue.path(str(report)),
            "judge_report_card": dg.MetadataValue.md(judge_card_md(card)) if len(card) else "no AI judge in this batch",
            "judge_bias_plot": md_image(judge_bias_plot(card), "judge position and length bias"),
        }
    )
