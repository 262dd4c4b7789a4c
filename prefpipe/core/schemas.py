"""The columns of every warehouse table, in order.

Every asset returns exactly these columns, in this order and with these dtypes (`conform` enforces
it), so a table has the same shape whichever batch created it (the warehouse inserts by name).
The pure functions that produce each frame use the same lists, so a column added here is added
everywhere at once.

`batch_id` is added by the asset layer; the pure functions never see it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pandas as pd

# dtype names: "string" (nullable text), "float64", "Int64" (nullable int), "boolean", "datetime64[ns, UTC]"
PROMPTS: Final = {
    "prompt_id": "string",
    "prompt": "string",
    "candidates": "string",  # JSON list of {"model", "text"} or "[]"
    "source_line": "Int64",
}

RESPONSE_PAIRS: Final = {
    "pair_id": "string",  # "<prompt_id>:<n>"
    "prompt_id": "string",
    "prompt": "string",
    "response_a": "string",
    "response_b": "string",
    "model_a": "string",
    "model_b": "string",
    "strategy": "string",  # existing | two_models | two_temperatures | best_of_n | rejection_sampling
    "strategy_params": "string",  # JSON
    "dropped": "boolean",  # True when the pair was dropped from judging and labelling (row kept for the record)
    "drop_reason": "string",  # why the pair is degenerate (empty / near-identical); set with dropped False when kept
}

AI_LABELS: Final = {
    "pair_id": "string",
    "judge": "string",  # judge name (model, or an external judge's name)
    "label": "string",  # one of the five verdicts, or null when not usable
    "status": "string",  # ok | unparsed | inconsistent | failed
    "confidence": "float64",  # in [0, 1]; null when there is no label
    "label_ab": "string",  # verdict with the pair's own order shown (null if unparsed/failed)
    "label_ba": "string",  # verdict with the order swapped, mapped back to the pair's order
    "raw": "string",  # the judge's raw answer(s), kept for audit
    "guideline_version": "string",
    "judge_prompt_version": "string",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "cost_usd": "float64",
}

ROUTING: Final = {
    "pair_id": "string",
    "route": "string",  # accepted | spot_check | human | expert | over_budget
    "reason": "string",
    "ai_label": "string",
    "ai_confidence": "float64",
    "ai_status": "string",
    "labels_wanted": "Int64",  # labels people give before the pair is final: 1 (expert), labels_per_pair, null where the AI label stands
}

HUMAN_QUEUE: Final = {
    "pair_id": "string",
    "route": "string",
    "reason": "string",
    "priority": "float64",  # higher first
    "labels_wanted": "Int64",
    "enqueued": "boolean",  # False when a budget left it out
}

HUMAN_ANNOTATIONS: Final = {
    "pair_id": "string",
    "annotator_id": "string",
    "label": "string",  # five-point scale in the pair's own order; null when skipped
    "role": "string",  # annotator | expert
    "source": "string",  # app | import:<file name>
    "dimensions": "string",  # JSON object of rubric scores, "{}" when none
    "duration_s": "float64",  # server-measured seconds on task; null when unknown (imports)
    "is_gold": "boolean",
    "gold_label": "string",  # the key a gold answer is scored against; null while it awaits an expert re-check
    "flagged": "boolean",  # the annotator is flagged by gold (all their labels are marked)
    "guideline_version": "string",
    "created_at": "string",  # ISO-8601 UTC
}

ANNOTATOR_RELIABILITY: Final = {
    "annotator_id": "string",
    "n_labels": "Int64",
    "gold_answers": "Int64",
    "gold_accuracy": "float64",
    "majority_agreement": "float64",  # with the majority of the OTHER annotators
    "mean_seconds": "float64",
    "speed_penalty": "float64",
    "composite": "float64",
    "ds_accuracy": "float64",
    "gold_flagged": "boolean",
    "kept": "boolean",
}

FINAL_LABELS: Final = {
    "pair_id": "string",
    "label": "string",
    "confidence": "float64",
    "n_labels": "Int64",
    "method": "string",  # majority | weighted | dawid_skene | ai | expert
    "source": "string",  # human | ai | expert
    "guideline_version": "string",  # version(s) the deciding labels were made under, "+"-joined
}

AGREEMENT_REPORT: Final = {
    "metric": "string",
    "scope": "string",  # batch, or "a|b" for an annotator pair
    "value": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "n_items": "Int64",
    "band": "string",
    "interpretation": "string",
}

COST_REPORT: Final = {
    "section": "string",  # ledger | projection
    "item": "string",
    "quantity": "float64",
    "unit_usd": "float64",
    "total_usd": "float64",
    "note": "string",
}

PREFERENCE_DATASET: Final = {
    "pair_id": "string",
    "prompt": "string",
    "chosen": "string",
    "rejected": "string",
    "label": "string",
    "margin": "float64",
    "label_source": "string",
    "guideline_version": "string",
}


def empty(schema: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in schema.items()})


def require_columns(df: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise KeyError naming the frame and every column of `columns` it lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{name}: missing column(s) {', '.join(missing)}")


def conform(df: pd.DataFrame, schema: dict[str, str], *, name: str = "frame") -> pd.DataFrame:
    """Return `df` with exactly the schema's columns, in order, with the schema's dtypes.

    A missing column is a programming error and raises, naming the table and the column; extra
    columns are dropped.
    """
    require_columns(df, schema, name)
    out = df.loc[:, list(schema)].copy()
    for col, dtype in schema.items():
        if str(out[col].dtype) != dtype:
            out[col] = out[col].astype(dtype)
    return out.reset_index(drop=True)


GUIDELINES: Final = {
    "guideline_version": "string",
    "files": "string",  # JSON list of file names
    "text": "string",
    "rubric": "string",  # JSON
    "thresholds": "string",  # JSON
}

LLM_CALLS: Final = {
    "call_key": "string",
    "stage": "string",  # judge | judge_retry | generation | scorer | scorer_retry
    "actor": "string",
    "item_id": "string",  # pair_id (judge) or prompt_id (generation)
    "model": "string",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "cached": "boolean",
    "batch": "boolean",
    "status": "string",  # ok | failed | pending
    "attempts": "Int64",
    "cost_usd": "float64",
    "spent_usd": "float64",
    "error": "string",
}
"""One row per LLM call a stage made or took from the cache, priced: the usage ledger that
`prefpipe.llm.usage.usage_frame` builds (its docstring explains every column)."""

TABLES: Final[dict[str, dict[str, str]]] = {
    "guidelines": GUIDELINES,
    "prompts": PROMPTS,
    "response_pairs": RESPONSE_PAIRS,
    "generation_calls": LLM_CALLS,
    "ai_labels": AI_LABELS,
    "judge_calls": LLM_CALLS,
    "routing": ROUTING,
    "human_queue": HUMAN_QUEUE,
    "human_annotations": HUMAN_ANNOTATIONS,
    "annotator_reliability": ANNOTATOR_RELIABILITY,
    "filtered_annotations": HUMAN_ANNOTATIONS,
    "final_labels": FINAL_LABELS,
    "agreement_report": AGREEMENT_REPORT,
    "cost_report": COST_REPORT,
    "preference_dataset": PREFERENCE_DATASET,
}
"""Warehouse table name (= asset name) -> its columns, without batch_id."""
