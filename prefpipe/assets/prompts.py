import json

import pandas as pd

import dagster as dg

from prefpipe import schemas, settings
from prefpipe.assets._common import BATCH_ASSET, with_batch
from prefpipe.batches import PROMPTS_FILE, load_prompts


@dg.asset(**BATCH_ASSET, group_name="inputs")
def prompts(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """The batch's prompts, read from data/batches/<batch>/prompts.jsonl and validated.

    A malformed line, a missing prompt or a duplicate id fails the batch with a message naming the
    file, the line and the field; nothing downstream is written.
    """
    batch_id = context.partition_key
    frame = load_prompts(settings.batch_dir(batch_id) / PROMPTS_FILE)
    n_candidates = frame["candidates"].map(lambda s: len(json.loads(s)))
    context.add_output_metadata(
        {"prompts": len(frame), "with_existing_responses": int((n_candidates >= 2).sum()), "source": str(settings.batch_dir(batch_id) / PROMPTS_FILE)}
    )
    return with_batch(frame, schemas.PROMPTS, batch_id, table="prompts")
