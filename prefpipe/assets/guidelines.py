import json
import warnings

import pandas as pd

import dagster as dg

from prefpipe import schemas
from prefpipe.guidelines import load_guidelines


@dg.asset(io_manager_key="warehouse", group_name="inputs")
def guidelines(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
    """The team's labelling guidelines and rubric (data/guidelines/).

    Its version is a hash of the files' content: every AI label and human annotation records the
    version it was made under, so a guideline edit shows exactly which batches are stale. The data
    version changes only when the content does, so automation reruns batches on real changes only.
    """
    g = load_guidelines()
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
