import pandas as pd

import dagster as dg

from prefpipe import schemas
from prefpipe.assets._common import BATCH_ASSET, drop_batch, with_batch
from prefpipe.dataset import preference_rows


@dg.asset(**BATCH_ASSET, group_name="outputs")
def preference_dataset(context: dg.AssetExecutionContext, final_labels: pd.DataFrame, response_pairs: pd.DataFrame) -> pd.DataFrame:
    """The batch as training data in TRL's format: prompt, chosen, rejected, with a margin (label
    strength x confidence), where the label came from, and its guideline version. Pairs whose final
    label is a tie carry no preference and are left out."""
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
