"""The `published_dataset` asset: the files people take away, each publish a recorded version."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from prefpipe.defs.common import md_image, user_errors
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import BatchFolders, GuidelinesFolder, PublishFolders, RoutingSettings, WarehouseReader


def _columns(*names: str) -> dg.AssetIn:
    """An input read with only these columns: at a million pairs the report and the export's
    provenance need a few columns of each table, and never the pairs' text."""
    return dg.AssetIn(metadata={"columns": ["batch_id", *names]})


INPUTS = {
    "final_labels": _columns("pair_id", "label", "source", "method"),
    "response_pairs": _columns("dropped"),  # the report counts the pairs and the dropped ones
    "ai_labels": _columns("pair_id", "judge", "label", "status", "label_ab", "label_ba", "guideline_version", "judge_prompt_version", "cost_usd"),
    "routing": _columns("pair_id", "route", "reason", "labels_wanted"),
    "human_annotations": _columns("pair_id", "annotator_id", "label", "role", "source", "is_gold", "guideline_version"),
}
"""What published_dataset reads of each table beyond preference_dataset (read whole: it is the export)."""


@dg.asset(partitions_def=batches, group_name="outputs", ins=INPUTS)
@user_errors
def published_dataset(
    context: dg.AssetExecutionContext, preference_dataset: pd.DataFrame, final_labels: pd.DataFrame, response_pairs: pd.DataFrame,
    ai_labels: pd.DataFrame, routing: pd.DataFrame, human_annotations: pd.DataFrame, annotator_reliability: pd.DataFrame,
    agreement_report: pd.DataFrame, cost_report: pd.DataFrame, publish_folders: PublishFolders,
    warehouse_reader: WarehouseReader, guidelines_folder: GuidelinesFolder, batch_folders: BatchFolders, routing_settings: RoutingSettings,
) -> dg.MaterializeResult:
    """The files people take away, written only once preference_dataset's blocking check passed:
    Parquet and JSONL in TRL's format with a dataset card under data/exports/<batch>/, and the
    batch's self-contained HTML report (how this batch was made, agreement, reliability, judge
    report card, costs, labels by guideline version and what `prefpipe stale` says of the batch)
    under data/reports/<batch>.html. The card and the report state this batch's own counts (judges
    imported or asked, orders, routes, labels wanted and received, pairs waiting, versions).

    Every publish with rows is a version (the SHA-256 of its rows in pair order), kept under
    data/exports/<batch>/versions/ with what changed since the previous one: `prefpipe datasets
    history` lists them, `prefpipe datasets export` writes one again exactly. The same rows again
    record no new version. With no row (no pair complete yet) no file is written and earlier files
    stay as they were; the report, the batch's progress report, is still written. Files are
    replaced atomically: a failed write keeps the last ones."""
    from prefpipe.core.batch_facts import batch_facts
    from prefpipe.core.dataset_versions import DATA_FILES, canonical_order, history, next_version, record_version, versions_in
    from prefpipe.core.files import atomic_write
    from prefpipe.defs.stale_view import compute_view
    from prefpipe.exports.trl import trl_table, write_trl
    from prefpipe.reports.batch_story import left_as_they_were, version_sentences, why_nothing_published
    from prefpipe.reports.dataset_card import dataset_card
    from prefpipe.reports.html import render_batch_report, write_batch_report
    from prefpipe.reports.judge_card import warehouse_judge_report_card
    from prefpipe.reports.markdown import judge_card_md
    from prefpipe.reports.plots import judge_bias_plot

    batch_id = context.partition_key
    settings = batch_folders.config(batch_id)
    facts = batch_facts(
        batch_id, response_pairs=response_pairs, ai_labels=ai_labels, routing=routing, human_annotations=human_annotations,
        final_labels=final_labels, annotator_reliability=annotator_reliability, judge_setting=settings.judge,
        labels_per_pair=routing_settings.rules(guidelines_folder.load(), settings).labels_per_pair,  # where routing records none
    )
    trl = canonical_order(trl_table(preference_dataset, ai_labels=ai_labels, human_annotations=human_annotations, batch_id=batch_id))
    out_dir = Path(publish_folders.exports) / batch_id
    rows = trl.num_rows
    metadata: dict = {"rows": rows, "pairs_waiting": facts.waiting}
    publication, unpublished, data_version = None, None, None
    if rows:
        files = write_trl(trl, out_dir)
        publication = next_version(
            out_dir, files, batch_id=batch_id, run_id=context.run.run_id, published_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            rows=rows, guideline_versions=versions_in(trl, "guideline_version"), judge_prompt_versions=versions_in(trl, "judge_prompt_version"),
        )
        card_text = dataset_card(trl, agreement_report=agreement_report, title=f"prefpipe preference dataset: batch {batch_id}",
                                 facts=facts, publication=publication)
        card = atomic_write(out_dir / "README.md", lambda tmp: tmp.write_text(card_text, encoding="utf-8"))
        shown = publication.version if publication.new else publication.previous
        if publication.new:
            record_version(out_dir, publication, files, card)
        data_version = dg.DataVersion(shown.version)
        metadata.update({
            "version": shown.version, "new_version": publication.new, "published": " ".join(version_sentences(publication)),
            "parquet": dg.MetadataValue.path(str(files["parquet"])), "jsonl": dg.MetadataValue.path(str(files["jsonl"])),
        })
        change = publication.version.change if publication.new else None
        if change is not None:
            metadata.update({"pairs_added": change.added, "pairs_removed": change.removed, "labels_changed": change.labels_changed,
                             "rows_otherwise_changed": change.otherwise_changed})
    else:
        recorded = history(out_dir)
        left = left_as_they_were(recorded[-1] if recorded else None, any((out_dir / name).is_file() for name in DATA_FILES))
        unpublished = f"Nothing published: {why_nothing_published(facts)}; {left}."
        metadata.update({"published": unpublished, "version": recorded[-1].version if recorded else "none"})
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
    page = render_batch_report(batch_id, tables, current_guideline_version=current.guideline, stale=stale, judge_card=card,
                               facts=facts, publication=publication, unpublished=unpublished)
    report = write_batch_report(batch_id, page, Path(publish_folders.reports))
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "report": dg.MetadataValue.path(str(report)),
            "judge_report_card": dg.MetadataValue.md(judge_card_md(card)) if len(card) else "no AI judge in this batch",
            "judge_bias_plot": md_image(judge_bias_plot(card), "judge position and length bias"),
        },
        data_version=data_version,
    )
