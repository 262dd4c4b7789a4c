"""The `prompts` asset: a batch's prompts, read and validated."""

import json

import dagster as dg
import pandas as pd

from prefpipe.core import schemas
from prefpipe.core.batches import PROMPTS_FILE, load_prompts
from prefpipe.defs.common import BATCH_ASSET, user_errors, with_batch
from prefpipe.defs.resources import BatchFolders


@dg.asset(**BATCH_ASSET, group_name="inputs")
@user_errors
def prompts(context: dg.AssetExecutionContext, batch_folders: BatchFolders) -> pd.DataFrame:
    """The batch's prompts, read from data/batches/<batch>/prompts.jsonl and validated.

    A malformed line, a missing prompt or a duplicate id fails the batch with a message naming the
    file, the line and the field; nothing downstream is written.
    """
    batch_id = context.partition_key
    source = batch_folders.folder(batch_id) / PROMPTS_FILE
    frame = load_prompts(source)
    n_candidates = frame["candidates"].map(lambda s: len(json.loads(s)))
    context.add_output_metadata({"prompts": len(frame), "with_existing_responses": int((n_candidates >= 2).sum()), "source": str(source)})
    return with_batch(frame, schemas.PROMPTS, batch_id, table="prompts")
