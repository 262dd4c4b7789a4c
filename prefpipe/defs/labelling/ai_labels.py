"""The `ai_labels` asset (with `judge_calls`): the judges' verdicts, and its checks: verdicts
readable and position-consistent, labels made under the current versions."""

from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd
import pydantic

from prefpipe.core import schemas
from prefpipe.core.batch_config import CONFIG_FILE, NO_JUDGE
from prefpipe.core.ingest import AI_LABELS_FILE, import_ai_labels
from prefpipe.defs.common import PAIR_IDS, WARN, batch_check, check_md, check_threshold, drop_batch, md_table, pair_texts, user_errors, with_batch, with_llm_calls
from prefpipe.defs.partitions import batches
from prefpipe.defs.resources import BatchFolders, GuidelinesFolder, LLMResource, WarehouseReader
from prefpipe.defs.run_config import dagster_config, from_run_config
from prefpipe.judge.judge import JudgeConfig, judge_pairs
from prefpipe.errors import PrefpipeError
from prefpipe.llm.batch_files import MAX_BYTES_PER_FILE, MAX_REQUESTS_PER_FILE, BatchLimits
from prefpipe.llm.errors import LLMConfigError

STALE_CHECK = "labels_under_current_versions"
"""The partitioned check on ai_labels that fails (WARN) for a stale batch."""


class JudgeSetRunConfig(pydantic.BaseModel):
    """Run config of the ai_labels asset: the judges side by side, and Batch API mode."""

    judges: list[JudgeConfig] = pydantic.Field(default_factory=lambda: [JudgeConfig()], description="Judges whose verdicts are kept side by side.")
    batch_api: bool = pydantic.Field(False, description="Submit to the OpenAI Batch API (half price, up to 24 h) instead of calling now.")
    batch_max_requests: int = pydantic.Field(MAX_REQUESTS_PER_FILE, gt=0, description="Batch API: most requests in one input file (OpenAI's limit: 50,000).")
    batch_max_bytes: int = pydantic.Field(MAX_BYTES_PER_FILE, gt=0, description="Batch API: largest input file in bytes (OpenAI's limit: 200 MB).")


JudgeRunConfig = dagster_config(JudgeSetRunConfig, "JudgeRunConfig")


class AiLabelsConfig(JudgeRunConfig):
    run_judge: Literal["auto", "always", "never"] = pydantic.Field(
        "auto",
        description="auto: ask the configured judges only when the batch folder has no ai_labels.jsonl of imported verdicts; "
        "always: ask them as well (verdicts side by side); never: imported verdicts only.",
    )


@dg.multi_asset(
    outs=with_llm_calls(
        "ai_labels", "judge_calls",
        "Every call ai_labels made to the judges for the batch, one row a call: each order of each pair (stage `judge`) "
        "and each retry after an unreadable verdict (`judge_retry`), with the judge, the pair, the model, tokens in and "
        "out, whether the answer cache answered it or the Batch API made it (status `pending` while its answer is due), "
        "HTTP attempts, its price from the price table (`cost_usd`) and what this run paid (`spent_usd`: 0 when cached). "
        "Empty when no judge was asked (imported verdicts, or batch.json \"judge\": \"none\"). cost_report prices the batch from it.",
    ),
    partitions_def=batches,
    deps=["guidelines"],
    ins={"response_pairs": PAIR_IDS},
)
@user_errors
def ai_labels(
    context: dg.AssetExecutionContext, config: AiLabelsConfig, response_pairs: pd.DataFrame, llm: LLMResource,
    batch_folders: BatchFolders, guidelines_folder: GuidelinesFolder, warehouse_reader: WarehouseReader,
):
    """The AI judge's verdict on every pair, on the five-point scale, under the current guidelines.

    Each judge sees the guideline principles and rubric, reasons, and ends with one `VERDICT:` line;
    it judges both orders (A/B and B/A), and a verdict that flips with the order is recorded as
    position-inconsistent. Confidence comes from the verdict tokens' log-probabilities when the
    server returns them, else from the agreement of the two orders. An answer with no readable
    verdict is `unparsed` (never a tie) and goes to people. Verdicts of an external judge in the
    batch folder (ai_labels.jsonl) are imported alongside. batch.json `"judge": "none"` asks no judge
    (every pair goes to people); a model name there is the judge asked. `judge_calls` holds every
    call with its tokens and price; cached answers are never paid twice."""
    batch_id = context.partition_key
    folder = batch_folders.folder(batch_id)
    pairs = drop_batch(response_pairs)  # ids and flags: the texts are read below only when a judge is asked
    live = pairs[~pairs["dropped"].fillna(False).astype(bool)]
    guidelines = guidelines_folder.load()
    frames, usage, bias = [], schemas.empty(schemas.LLM_CALLS), None
    imported_file = folder / AI_LABELS_FILE
    batch_config = batch_folders.config(batch_id)
    if imported_file.is_file():
        frames.append(import_ai_labels(imported_file, batch_config, guideline_version=guidelines.version, known_pairs=pairs["pair_id"]))
    batch_judge = batch_config.judge
    ask = batch_judge != NO_JUDGE and (config.run_judge == "always" or (config.run_judge == "auto" and not imported_file.is_file()))
    if ask and len(live):
        judge_set = from_run_config(config, JudgeSetRunConfig)
        if batch_judge is not None:  # batch.json names the model: one judge of it, with the run config's other settings
            judge_set = judge_set.model_copy(update={"judges": [judge_set.judges[0].model_copy(update={"model": batch_judge, "name": None})]})
        require_endpoint(llm, folder)
        live = pair_texts(warehouse_reader, batch_id, live)
        limits = BatchLimits(judge_set.batch_max_requests, judge_set.batch_max_bytes)
        result = judge_pairs(live, guidelines, judge_set.judges, llm.get_client(), batch_api=judge_set.batch_api, batch_limits=limits)
        frames.append(result.labels)
        usage, bias = result.usage, result.bias
        if result.pending:
            context.log.info(f"{result.pending} verdict(s) are waiting in Batch API jobs {result.batch_jobs}; rerun the batch to ingest them")
        if judge_set.batch_api:
            context.log.info(f"Batch API: {result.ingested} answer(s) ingested, {len(result.batch_files)} file(s) submitted "
                             f"({sum(f['requests'] for f in result.batch_files)} requests, {sum(f['bytes'] for f in result.batch_files):,} bytes)")
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


def require_endpoint(llm: LLMResource, folder) -> None:
    """Fail before any call, in one message with both ways on, when no judge can be reached: no
    endpoint but OpenAI's, and no key for it."""
    try:
        llm.settings().resolved_api_key()
    except LLMConfigError:
        raise PrefpipeError(
            "no judge endpoint: the pairs need an AI judge, and none is configured. Either point prefpipe at an "
            "OpenAI-compatible server (set OPENAI_BASE_URL, and OPENAI_API_KEY if it needs one), or send every pair to people: "
            f'put "judge": "none" in {folder / CONFIG_FILE} (or run `prefpipe run --batch {folder.name} --judge none`)'
        ) from None


def _rate(k: int, n: int) -> float:
    return k / n if n else float("nan")


def judge_quality_result(ai_labels: pd.DataFrame, max_unparsed: float, max_inconsistent: float) -> dg.AssetCheckResult:
    """Per judge: unparsed rate over all verdicts and position-inconsistent rate over verdicts
    judged in both orders, each at most its threshold (WARN above)."""
    base = {"max_unparsed_rate": max_unparsed, "max_position_inconsistent_rate": max_inconsistent}
    if ai_labels.empty:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={**base, "note": "no AI labels in this batch"})
    status = ai_labels["status"].astype("string")
    both = ai_labels["label_ab"].notna() & ai_labels["label_ba"].notna()
    frame = pd.DataFrame({
        "judge": ai_labels["judge"].astype("string").fillna("(unknown)"),
        "unparsed": status.eq("unparsed").fillna(False), "inconsistent": status.eq("inconsistent").fillna(False),
        "failed": status.eq("failed").fillna(False), "both_orders": both,
    })
    per = frame.groupby("judge").agg(verdicts=("unparsed", "size"), unparsed=("unparsed", "sum"), both_orders=("both_orders", "sum"),
                                     inconsistent=("inconsistent", "sum"), failed=("failed", "sum")).reset_index()
    per["unparsed_rate"] = per["unparsed"] / per["verdicts"]
    per["inconsistent_rate"] = np.where(per["both_orders"] > 0, per["inconsistent"] / per["both_orders"].where(per["both_orders"] > 0, 1), np.nan)
    over = per[(per["unparsed_rate"] > max_unparsed) | (per["inconsistent_rate"].fillna(0) > max_inconsistent)]
    metadata = {
        **base,
        "unparsed_rate": float(per["unparsed"].sum() / per["verdicts"].sum()),
        "position_inconsistent_rate": _rate(int(per["inconsistent"].sum()), int(per["both_orders"].sum())),
        "failed": int(per["failed"].sum()),
        "by_judge": check_md(per),
    }
    if not over.empty:
        metadata["judges_over_threshold"] = dg.MetadataValue.json(sorted(map(str, over["judge"])))
    return dg.AssetCheckResult(passed=over.empty, severity=WARN, metadata=metadata)


@batch_check("ai_labels")
def judge_verdicts_readable_and_consistent(ai_labels: pd.DataFrame, guidelines_folder: GuidelinesFolder) -> dg.AssetCheckResult:
    """Each judge's unparsed rate is at most `max_unparsed_rate` (default 10%) and its
    position-inconsistent rate (a different verdict when A and B swap places) at most
    `max_position_inconsistent_rate` (default 20%). Those pairs go to people, so a high rate costs
    money: fix the judge prompt or model (docs/llm.md), then rerun the batch."""
    g = guidelines_folder.load()
    return judge_quality_result(ai_labels, check_threshold(g, "max_unparsed_rate"), check_threshold(g, "max_position_inconsistent_rate"))


@batch_check("ai_labels", name=STALE_CHECK)
def labels_under_current_versions(
    context: dg.AssetCheckExecutionContext, warehouse_reader: WarehouseReader, guidelines_folder: GuidelinesFolder
) -> dg.AssetCheckResult:
    """The batch was made under the current guidelines and judge prompts: prefpipe's own AI labels
    carry the current versions and its last run used the current guideline version. Fails (WARN)
    for a stale batch, with the stale stages and what relabelling costs; `prefpipe stale --record`
    runs it alone for every batch after a guideline edit, and `prefpipe backfill --stale` reruns
    the stale ones. Human labels kept under older versions are listed, never failed on."""
    from prefpipe.defs.stale_view import check_result_for, compute_view

    batch_id = context.partition_key
    view, _, current = compute_view(
        context.instance, database=warehouse_reader.database, guidelines_dir=guidelines_folder.folder,
        batch_id=batch_id, include_current=True, this_run=context.run.run_id,
    )
    passed, metadata = check_result_for(view, batch_id, current)
    return dg.AssetCheckResult(passed=passed, severity=WARN, metadata=metadata)
