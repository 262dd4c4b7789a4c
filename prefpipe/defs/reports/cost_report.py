"""The `cost_report` asset: what the batch cost, and what a million pairs would."""

import dagster as dg
import pandas as pd
import pydantic

from prefpipe.core import schemas
from prefpipe.core.costs import HumanPrices, cost_ledger, cost_plot_png
from prefpipe.defs.common import BATCH_ASSET, drop_batch, md_image, md_table, user_errors, with_batch


class CostConfig(dg.Config):
    per_label_usd: float = pydantic.Field(HumanPrices.per_label, description="What one human label costs you.")
    per_expert_label_usd: float = pydantic.Field(HumanPrices.per_expert_label, description="What one expert label costs you.")


@dg.asset(**BATCH_ASSET, group_name="reports")
@user_errors
def cost_report(
    context: dg.AssetExecutionContext, config: CostConfig, generation_calls: pd.DataFrame, judge_calls: pd.DataFrame,
    human_annotations: pd.DataFrame, final_labels: pd.DataFrame, routing: pd.DataFrame,
) -> pd.DataFrame:
    """What the batch cost and what a million pairs would: every LLM call (tokens x the editable
    price table, Batch API at its discount), every human and expert label at the configured
    prices, totals, dollars per final label and per route; then a projection to 10K, 100K, 500K
    and 1M pairs from this batch's measured routing rates, beside the source design's figures."""
    batch_id = context.partition_key
    calls = pd.concat([drop_batch(f) for f in (generation_calls, judge_calls) if len(f)], ignore_index=True) if (len(generation_calls) or len(judge_calls)) else schemas.empty(schemas.LLM_CALLS)
    ledger = cost_ledger(
        calls, drop_batch(human_annotations), drop_batch(final_labels), drop_batch(routing),
        HumanPrices(per_label=config.per_label_usd, per_expert_label=config.per_expert_label_usd),
    )
    context.add_output_metadata(
        {
            "ledger": md_table(ledger[ledger["section"] == "ledger"], max_rows=60),
            "projection": md_table(ledger[ledger["section"] == "projection"], max_rows=60),
            "plot": md_image(cost_plot_png(ledger, title=f"cost report: batch {batch_id}"), "cost report"),
        }
    )
    return with_batch(ledger, schemas.COST_REPORT, batch_id, table="cost_report")
