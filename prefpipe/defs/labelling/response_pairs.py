"""The `response_pairs` asset (with `generation_calls`): two responses per prompt."""

import dagster as dg
import pandas as pd

from prefpipe.core import schemas
from prefpipe.defs.common import drop_batch, history_reward_model, md_table, user_errors, with_batch, with_llm_calls
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import LLMResource, WarehouseReader
from prefpipe.defs.run_config import dagster_config, from_run_config
from prefpipe.generation.config import GenerationConfig
from prefpipe.generation.pairs import FEWER_THAN_TWO, existing_pairs_in_chunks, generate_pairs
from prefpipe.llm.usage import USAGE

GenerationRunConfig = dagster_config(GenerationConfig, "GenerationRunConfig")
"""The run config of response_pairs: prefpipe.generation.config.GenerationConfig's fields."""


def made_a_pair(pairs) -> bool:
    """Whether some prompt had two candidates (every row of one with fewer says so in its reason)."""
    reasons = pairs["drop_reason"].astype("string[pyarrow]")
    return not bool(reasons.str.startswith(FEWER_THAN_TWO).fillna(False).all())


@dg.multi_asset(
    outs=with_llm_calls(
        "response_pairs", "generation_calls",
        "Every model call response_pairs made for the batch, one row a call: generating responses (stage `generation`) "
        "and scoring best-of-n or rejection-sampling candidates (`scorer`, `scorer_retry`), with the strategy, the prompt "
        "it served, the model, tokens in and out, whether the answer cache answered it or the Batch API made it, status "
        "and HTTP attempts, its price from the price table (`cost_usd`) and what this run paid (`spent_usd`: 0 when "
        "cached). Empty when the pairs are the batch's own completions (strategy `existing`). cost_report prices the batch from it.",
    ),
    partitions_def=batches,
    deps=["prompts"],  # read a chunk at a time (warehouse_reader), not loaded whole as an input: a million prompts' texts
)
@user_errors
def response_pairs(
    context: dg.AssetExecutionContext, config: GenerationRunConfig, llm: LLMResource, warehouse_reader: WarehouseReader
):
    """Two responses per prompt, A and B. With `existing` (the default) they are the candidate
    responses given in prompts.jsonl, in the file's order, so imported labels line up; the other
    strategies ask a model through the OpenAI-compatible endpoint: two different models, one model
    at two temperatures, best-of-n (best vs worst by a scorer: the judge, or `reward_model`, the
    Bradley-Terry model trained on earlier batches' final labels) or rejection sampling. Pairs whose
    responses are empty or near-identical are kept in the table with the reason, and dropped from
    judging and labelling when the strategy generated them. The strategy and its parameters are
    stored on every pair; `generation_calls` holds every model call with its tokens and price."""
    batch_id = context.partition_key
    cfg: GenerationConfig = from_run_config(config, GenerationConfig)
    if cfg.strategy == "existing":
        pairs, usage = existing_pairs_in_chunks(warehouse_reader.read_chunks("prompts", batch_id=batch_id), cfg), schemas.empty(USAGE)
        if not made_a_pair(pairs):
            raise dg.Failure(
                f"batch {batch_id!r}: no prompt in prompts.jsonl has two candidate responses (field 'responses'), so the "
                "'existing' strategy has nothing to pair; add responses, or choose a generation strategy in the run config"
            )
    else:
        frame = drop_batch(warehouse_reader.read_tables(("prompts",), batch_id=batch_id, text_in_arrow=True)["prompts"])
        scorer = None
        if cfg.strategy in ("best_of_n", "rejection_sampling") and cfg.scorer == "reward_model":
            model = history_reward_model(warehouse_reader, batch_id)
            if model is None:
                raise dg.Failure(
                    "response_pairs config: field 'scorer': 'reward_model' needs a reward model, and the warehouse holds too few "
                    "directional final labels to train one; use scorer 'judge' until earlier batches are labelled"
                )
            scorer = model.score
        result = generate_pairs(frame, cfg, llm.get_client(), scorer=scorer)
        pairs, usage = result.pairs, result.usage
    dropped = pairs[pairs["dropped"].fillna(False)]
    yield dg.Output(
        with_batch(pairs, schemas.RESPONSE_PAIRS, batch_id, table="response_pairs"),
        output_name="response_pairs",
        metadata={
            "pairs": len(pairs),
            "dropped": len(dropped),
            "strategy": cfg.strategy,
            "drop_reasons": md_table(dropped.groupby("drop_reason").size().rename("pairs").reset_index()) if len(dropped) else "none",
        },
    )
    yield dg.Output(
        with_batch(usage, schemas.LLM_CALLS, batch_id, table="generation_calls"),
        output_name="generation_calls",
        metadata={"calls": len(usage), "cost_usd": float(usage["cost_usd"].sum()) if len(usage) else 0.0},
    )
