from typing import Literal

import pandas as pd
import pydantic

import dagster as dg

from prefpipe import schemas, settings
from prefpipe.assets._common import BATCH_OUT, drop_batch, md_table, with_batch
from prefpipe.batches import load_batch_config
from prefpipe.guidelines import load_guidelines
from prefpipe.imports import AI_LABELS_FILE, import_ai_labels
from prefpipe.judge.judge import judge_pairs
from prefpipe.llm.resource import JudgeRunConfig, JudgeSetRunConfig, LLMResource, from_run_config
from prefpipe.partitions import batches


class AiLabelsConfig(JudgeRunConfig):
    run_judge: Literal["auto", "always", "never"] = pydantic.Field(
        "auto",
        description="auto: ask the configured judges only when the batch folder has no ai_labels.jsonl of imported verdicts; "
        "always: ask them as well (verdicts side by side); never: imported verdicts only.",
    )


@dg.multi_asset(
    outs={"ai_labels": dg.AssetOut(**BATCH_OUT, group_name="labelling"), "judge_calls": dg.AssetOut(**BATCH_OUT, group_name="costs")},
    partitions_def=batches,
    deps=["guidelines"],
)
def ai_labels(context: dg.AssetExecutionContext, config: AiLabelsConfig, response_pairs: pd.DataFrame, llm: LLMResource):
    """The AI judge's verdict on every pair, on the five-point scale, under the current guidelines.

    Each judge sees the guideline principles and rubric, reasons, and ends with one `VERDICT:` line;
    it judges both orders (A/B and B/A), and a verdict that flips with the order is recorded as
    position-inconsistent. Confidence comes from the verdict tokens' log-probabilities when the
    server returns them, else from the agreement of the two orders. An answer with no readable
    verdict is `unparsed` (never a tie) and goes to people. Verdicts of an external judge in the
    batch folder (ai_labels.jsonl) are imported alongside. `judge_calls` holds every call with its
    tokens and price; cached answers are never paid twice."""
    batch_id = context.partition_key
    folder = settings.batch_dir(batch_id)
    pairs = drop_batch(response_pairs)
    live = pairs[~pairs["dropped"].fillna(False).astype(bool)]
    guidelines = load_guidelines()
    frames, usage, bias = [], schemas.empty(schemas.LLM_CALLS), None
    imported_file = folder / AI_LABELS_FILE
    if imported_file.is_file():
        frames.append(import_ai_labels(imported_file, load_batch_config(folder), guideline_version=guidelines.version, known_pairs=set(pairs["pair_id"])))
    ask = config.run_judge == "always" or (config.run_judge == "auto" and not imported_file.is_file())
    if ask and len(live):
        judge_set = from_run_config(config, JudgeSetRunConfig)
        client = llm.get_client()
        try:
            result = judge_pairs(live, guidelines, judge_set.judges, client, batch_api=judge_set.batch_api)
        finally:
            client.close()
        frames.append(result.labels)
        usage, bias = result.usage, result.bias
        if result.pending:
            context.log.info(f"{result.pending} verdict(s) are waiting in Batch API jobs {result.batch_jobs}; rerun the batch to ingest them")
    labels = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(not f.empty for f in frames) else schemas.empty(schemas.AI_LABELS)
    status = labels.groupby(["judge", "status"]).size().unstack(fill_value=0).reset_index() if len(labels) else pd.DataFrame()
    metadata = {
        "labels": len(labels),
        "judges": ", ".join(labels["judge"].drop_duplicates()) if len(labels) else "none",
        "unparsed": int((labels["status"] == "unparsed").sum()),
        "position_inconsistent": int((labels["status"] == "inconsistent").sum()),
        "failed": int((labels["status"] == "failed").sum()),
        "status_by_judge": md_table(status),
        "guideline_version": guidelines.version,
    }
    if bias is not None and len(bias):
        metadata["position_and_length_bias"] = md_table(bias)
    yield dg.Output(with_batch(labels, schemas.AI_LABELS, batch_id, table="ai_labels"), output_name="ai_labels", metadata=metadata)
    yield dg.Output(
        with_batch(usage, schemas.LLM_CALLS, batch_id, table="judge_calls"),
        output_name="judge_calls",
        metadata={"calls": len(usage), "cached": int(usage["cached"].fillna(False).sum()) if len(usage) else 0, "cost_usd": float(usage["cost_usd"].sum()) if len(usage) else 0.0},
    )
