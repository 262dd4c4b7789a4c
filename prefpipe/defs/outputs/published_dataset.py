"""The `published_dataset` asset: the files people take away."""

from pathlib import Path

import dagster as dg
import pandas as pd

from prefpipe.defs.common import drop_batch, md_image, user_errors
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import GuidelinesFolder, PublishFolders, WarehouseReader


@dg.asset(partitions_def=batches, group_name="outputs")
@user_errors
def published_dataset(
    context: dg.AssetExecutionContext, preference_dataset: pd.DataFrame, final_labels: pd.DataFrame, response_pairs: pd.DataFrame,
    ai_labels: pd.DataFrame, routing: pd.DataFrame, human_annotations: pd.DataFrame, annotator_reliability: pd.DataFrame,
    agreement_report: pd.DataFrame, cost_report: pd.DataFrame, publish_folders: PublishFolders,
    warehouse_reader: WarehouseReader, guidelines_folder: GuidelinesFolder,
) -> dg.MaterializeResult:
    """The files people take away, written only once preference_dataset's blocking check passed:
    Parquet and JSONL in TRL's format with a dataset card under data/exports/<batch>/, and the
    batch's self-contained HTML report (agreement, reliability, judge report card, costs, labels by
    guideline version and what `prefpipe stale` says of the batch) under data/reports/<batch>.html.
    Files are replaced atomically: a failed write keeps the last ones."""
    from prefpipe.core.files import atomic_write
    from prefpipe.defs.stale_view import compute_view
    from prefpipe.exports.trl import to_trl, write_trl
    from prefpipe.reports.dataset_card import dataset_card
    from prefpipe.reports.html import render_batch_report, write_batch_report
    from prefpipe.reports.judge_card import judge_report_card
    from prefpipe.reports.markdown import judge_card_md
    from prefpipe.reports.plots import judge_bias_plot

    batch_id = context.partition_key
    trl = to_trl(preference_dataset, ai_labels=ai_labels, human_annotations=human_annotations, batch_id=batch_id)
    out_dir = Path(publish_folders.exports) / batch_id
    files = write_trl(trl, out_dir)
    card_text = dataset_card(trl, agreement_report=agreement_report, title=f"prefpipe preference dataset: batch {batch_id}")
    atomic_write(out_dir / "README.md", lambda tmp: tmp.write_text(card_text, encoding="utf-8"))
    card = judge_report_card(drop_batch(ai_labels), drop_batch(final_labels), drop_batch(response_pairs))
    tables = {
        "response_pairs": response_pairs, "ai_labels": ai_labels, "routing": routing, "human_annotations": human_annotations,
        "annotator_reliability": annotator_reliability, "final_labels": final_labels, "agreement_report": agreement_report,
        "cost_report": cost_report, "preference_dataset": preference_dataset,
    }
    stale, _, current = compute_view(
        context.instance, database=warehouse_reader.database, guidelines_dir=guidelines_folder.folder, batch_id=batch_id, this_run=context.run.run_id
    )
    page = render_batch_report(batch_id, tables, current_guideline_version=current.guideline, stale=stale)
    report = write_batch_report(batch_id, page, Path(publish_folders.reports))
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
