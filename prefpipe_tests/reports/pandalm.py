"""Warehouse-shaped frames built from the real PandaLM files (999 pairs, 3 annotators, gpt-3.5
verdicts), for the report and export tests. Built straight from the published JSON so the tests
do not depend on the pipeline's own import code."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from prefpipe.core import schemas

RAW_TO_LABEL = {0: "A=B", 1: "A>B", 2: "B>A"}
GPT_TO_LABEL = {"1": "A>B", "2": "B>A", "Tie": "A=B"}
GUIDELINE = "pandalm-v1"


@lru_cache(maxsize=2)
def pandalm_frames(folder: Path) -> dict[str, pd.DataFrame]:
    """Tables keyed by warehouse name: response_pairs, human_annotations, ai_labels, final_labels."""
    rows = json.loads((folder / "pandalm" / "testset-v1.json").read_text(encoding="utf-8"))
    gpt = {r["idx"]: r for r in json.loads((folder / "pandalm" / "gpt-3.5-turbo-testset-v1.json").read_text(encoding="utf-8"))}
    pairs, annotations, ai, final = [], [], [], []
    for r in rows:
        pair_id = f"pandalm-{r['idx']}:0"
        model_a, model_b = r["cmp_key"].split("_", 1)
        prompt = r["instruction"] + (("\n\n" + r["input"]) if r["input"] else "")
        pairs.append(
            {"pair_id": pair_id, "prompt_id": f"pandalm-{r['idx']}", "prompt": prompt, "response_a": r["response1"],
             "response_b": r["response2"], "model_a": model_a, "model_b": model_b, "strategy": "existing",
             "strategy_params": "{}", "dropped": False, "drop_reason": None}
        )
        labels = [RAW_TO_LABEL[r[f"annotator{k}"]] for k in (1, 2, 3)]
        for k, label in enumerate(labels, start=1):
            annotations.append(
                {"pair_id": pair_id, "annotator_id": f"annotator{k}", "label": label, "role": "annotator",
                 "source": "import:pandalm", "dimensions": "{}", "duration_s": np.nan, "is_gold": False,
                 "gold_label": None, "flagged": False, "guideline_version": GUIDELINE,
                 "created_at": "2023-06-01T00:00:00Z"}
            )
        values, counts = np.unique(labels, return_counts=True)
        final.append(
            {"pair_id": pair_id, "label": values[counts.argmax()], "confidence": counts.max() / 3, "n_labels": 3,
             "method": "majority", "source": "human", "guideline_version": GUIDELINE}
        )
        verdict = gpt[r["idx"]]["gpt_result"]
        label = GPT_TO_LABEL.get(verdict)
        ai.append(
            {"pair_id": pair_id, "judge": "gpt-3.5-turbo", "label": label, "status": "ok" if label else "unparsed",
             "confidence": np.nan, "label_ab": label, "label_ba": None, "raw": verdict, "guideline_version": GUIDELINE,
             "judge_prompt_version": "pandalm", "prompt_tokens": pd.NA, "completion_tokens": pd.NA, "cost_usd": np.nan}
        )
    return {
        "response_pairs": schemas.conform(pd.DataFrame(pairs), schemas.RESPONSE_PAIRS),
        "human_annotations": schemas.conform(pd.DataFrame(annotations), schemas.HUMAN_ANNOTATIONS),
        "ai_labels": schemas.conform(pd.DataFrame(ai), schemas.AI_LABELS),
        "final_labels": schemas.conform(pd.DataFrame(final), schemas.FINAL_LABELS),
    }
