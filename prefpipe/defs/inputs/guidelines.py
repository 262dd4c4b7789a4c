"""The `guidelines` asset (unpartitioned) and its check of which batches the current guidelines
leave stale."""

import json
import warnings

import dagster as dg
import pandas as pd

from prefpipe.core import schemas
from prefpipe.defs.common import WARN, check_md, user_errors
from prefpipe.defs.resources import GuidelinesFolder, WarehouseReader


@dg.asset(io_manager_key="warehouse", group_name="inputs")
@user_errors
def guidelines(context: dg.AssetExecutionContext, guidelines_folder: GuidelinesFolder) -> dg.Output[pd.DataFrame]:
    """The team's labelling guidelines and rubric (data/guidelines/).

    Its version is a hash of the files' content: every AI label and human annotation records the
    version it was made under, so a guideline edit shows exactly which batches are stale. The data
    version changes only when the content does, so automation reruns batches on real changes only.
    """
    g = guidelines_folder.load()
    frame = schemas.conform(
        pd.DataFrame(
            [
                {
                    "guideline_version": g.version,
                    "files": json.dumps(list(g.files)),
                    "text": g.text,
                    "rubric": json.dumps(g.rubric_dict()),
                    "thresholds": json.dumps(g.thresholds),
                }
            ]
        ),
        schemas.GUIDELINES,
        name="guidelines",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # data_version on Output is beta; it is what automation keys on
        return dg.Output(
            frame,
            data_version=dg.DataVersion(g.version),
            metadata={"guideline_version": g.version, "files": ", ".join(g.files), "rubric": dg.MetadataValue.md(g.rubric_text())},
        )


@dg.asset_check(asset="guidelines")
def batches_under_current_guidelines(
    context: dg.AssetCheckExecutionContext, warehouse_reader: WarehouseReader, guidelines_folder: GuidelinesFolder
) -> dg.AssetCheckResult:
    """Every batch in the warehouse was made under these guidelines. Fails (WARN) listing the stale
    batches, what relabelling them costs and what to run (`prefpipe backfill --stale`); the
    automation sensor relabels them on its own when the guidelines' content changed. Per batch, the
    ai_labels check `labels_under_current_versions` says the same (`prefpipe stale --record`)."""
    from prefpipe.core.stale_view import batches_to_rerun
    from prefpipe.defs.stale_view import compute_view

    view, batch_ids, current = compute_view(context.instance, database=warehouse_reader.database, guidelines_dir=guidelines_folder.folder)
    own = context.run.tags.get("dagster/partition")  # this run reruns that batch itself
    stale = [b for b in batches_to_rerun(view) if b != own]
    rows = view[view["batch_id"].isin(stale)]
    metadata = {
        "guideline_version": current.guideline,
        "batches": len(batch_ids),
        "stale_batches": dg.MetadataValue.json(stale),
        "relabel_cost_usd": float(rows.loc[rows["stage"] == "ai_labels", "estimated_cost_usd"].sum()),
        "stale_stages": check_md(rows[["batch_id", "stage", "n_labels", "n_stale", "stale_guideline_versions", "estimated_cost_usd", "action"]]),
        "what_to_do": "nothing" if not stale else "prefpipe backfill --stale (or wait for the automation sensor)",
    }
    if own is not None:
        metadata["rerun_in_this_run"] = own
    return dg.AssetCheckResult(passed=not stale, severity=WARN, metadata=metadata)
