"""The `published_dataset` asset: the files people take away."""

from pathlib import Path

import dagster as dg
import pandas as pd

from prefpipe.defs.common import md_image, user_errors
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import GuidelinesFolder, PublishFolders, WarehouseReader


def _columns(*names: str) -> dg.AssetIn:
    """An input read with only these columns: at a million pairs the report and the export's
    provenance need a few columns of each table, and never the pairs' text."""
    return dg.AssetIn(metadata={"columns": ["batch_id", *names]})


INPUTS = {
    "final_labels": _columns("pair_id", "label", "source"),
    "response_pairs": _columns("dropped"),  # the report counts the pairs and the dropped ones
    "ai_labels": _columns("pair_id", "judge", "label", "status", "label_ab", "label_ba", "guideline_version", "judge_prompt_version", "cost_usd"),
    "routing": _columns("pair_id", "route"),
    "human_annotations": _columns("pair_id", "annotator_id", "label", "guideline_version"),
}
"""What published_dataset reads of each table beyond preference_dataset (read whole: it is the export)."""


@dg.asset(partitions_def=batches, group_name="outputs", ins=INPUTS)
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
    Files are replaced atomically: a failed write keeps the last ones. The export is built in Arrow
    and the judge card measures the responses in the warehouse, so no text but the export's is read."""
    from prefpipe.core.files import atomic_write
    from prefpipe.defs.stale_view import compute_view
    from prefpipe.exports.trl import trl_table, write_trl
    from prefpipe.reports.dataset_card import dataset_card
    from prefpipe.reports.html import render_batch_report, write_batch_report
    from prefpipe.reports.judge_card import warehouse_judge_report_card
    from prefpipe.reports.markdown import judge_card_md
    from prefpipe.reports.plots import judge_bias_plot

    batch_id = context.partition_key
    trl = trl_table(preference_dataset, ai_labels=ai_labels, human_annotations=human_annotations, batch_id=batch_id)
    out_dir = Path(publish_folders.exports) / batch_id
    files = write_trl(trl, out_dir)
    card_text = dataset_card(trl, agreement_report=agreement_report, title=f"prefpipe preference dataset: batch {batch_id}")
    atomic_write(out_dir / "README.md", lambda tmp: tmp.write_text(card_text, encoding="utf-8"))
    rows = trl.num_rows
    del trl
    card = warehouse_judge_report_card(warehouse_reader.database, batch_id, ai_labels, final_labels)
    tables = {
        "response_pairs": response_pairs, "ai_labels": ai_labels, "routing": routing, "human_annotations": human_annotations,
        "annotator_reliability": annotator_reliability, "final_labels": final_labels, "agreement_report": agreement_report,
        "cost_report": cost_report,
    }
    stale, _, current = compute_view(
        context.instance, database=warehouse_reader.database, guidelines_dir=guidelines_folder.folder, batch_id=batch_id, this_run=context.run.run_id
    )
    page = render_batch_report(batch_id, tables, current_guideline_version=current.guideline, stale=stale, judge_card=card)
    report = write_batch_report(batch_id, page, Path(publish_folders.reports))
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "parquet": dg.MetadataValue.path(str(files["parquet"])),
            "jsonl": dg.MetadataValue.path(str(files["jsonl"])),
            "report": dg.MetadataValue.path(str(report)),
            "judge_report_card": dg.MetadataValue.md(judge_card_md(card)) if len(card) else "no AI judge in this batch",
            "judge_bias_plot": md_image(judge_bias_plot(card), "judge position and length bias"),
        }
    )
