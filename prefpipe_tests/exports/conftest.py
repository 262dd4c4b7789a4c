"""A small, realistic batch: pairs (one dropped), two judges, annotations with rubric scores,
a skipped item, an expert, text with quotes, markup and non-ASCII characters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import schemas


@pytest.fixture
def small_batch() -> dict[str, pd.DataFrame]:
    pairs = pd.DataFrame(
        {
            "pair_id": ["p1:0", "p2:0", "p3:0", "p4:0"],
            "prompt_id": ["p1", "p2", "p3", "p4"],
            "prompt": ["Say hi", 'Quote "this" & <that>', "Résumé in 3 words — please", "Dropped prompt"],
            "response_a": ["Hi!", "“this” & <that>", "Brief, clear, done.", "x"],
            "response_b": ["Hello there, friend.", "this and that", "Short résumé", "y"],
            "model_a": ["m1"] * 4,
            "model_b": ["m2"] * 4,
            "strategy": ["two_models"] * 4,
            "strategy_params": ["{}"] * 4,
            "dropped": [False, False, False, True],
            "drop_reason": [None, None, None, "identical responses"],
        }
    )
    ai = pd.DataFrame(
        {
            "pair_id": ["p1:0", "p1:0", "p2:0", "p3:0"],
            "judge": ["gpt-a", "gpt-b", "gpt-a", "gpt-a"],
            "label": ["A>B", "A>>B", None, "B>A"],
            "status": ["ok", "ok", "unparsed", "ok"],
            "confidence": [0.8, 0.95, np.nan, 0.6],
            "label_ab": ["A>B", "A>>B", None, "B>A"],
            "label_ba": ["A>B", "A>B", None, "A>B"],
            "raw": ["...", "...", "garbled", "..."],
            "guideline_version": ["g2", "g2", "g2", "g1"],
            "judge_prompt_version": ["jp1", "jp1", "jp1", "jp1"],
            "prompt_tokens": [100, 100, 100, 100],
            "completion_tokens": [20, 20, 20, 20],
            "cost_usd": [0.001, 0.002, 0.001, 0.001],
        }
    )
    human = pd.DataFrame(
        {
            "pair_id": ["p1:0", "p1:0", "p2:0", "p2:0", "p3:0", "p3:0"],
            "annotator_id": ["ann-1", "ann-2", "ann-1", "ann-2", "ann-1", "expert@example.org"],
            "label": ["A>B", "A>>B", "B>A", None, "B>>A", "B>A"],
            "role": ["annotator", "annotator", "annotator", "annotator", "annotator", "expert"],
            "source": ["app"] * 6,
            "dimensions": [
                json.dumps({"helpfulness": 4, "correctness": 5}),
                "{}",
                json.dumps({"helpfulness": 2}),
                "{}",
                json.dumps({"conciseness": 3}),
                "{}",
            ],
            "duration_s": [12.5, 30.0, 8.25, np.nan, 44.0, 61.5],
            "is_gold": [False, True, False, False, False, False],
            "gold_label": [None, "A>>B", None, None, None, None],
            "flagged": [False] * 6,
            "guideline_version": ["g2", "g2", "g2", "g2", "g1", "g2"],
            "created_at": [f"2026-01-0{i}T10:00:00Z" for i in range(1, 7)],
        }
    )
    final = pd.DataFrame(
        {
            "pair_id": ["p1:0", "p2:0", "p3:0"],
            "label": ["A>B", "B>A", "A=B"],
            "confidence": [0.75, 0.5, 0.9],
            "n_labels": [2, 1, 2],
            "method": ["majority", "majority", "dawid_skene"],
            "source": ["human", "human", "human"],
            "guideline_version": ["g2", "g2", "g1+g2"],
        }
    )
    return {
        "response_pairs": schemas.conform(pairs, schemas.RESPONSE_PAIRS),
        "ai_labels": schemas.conform(ai, schemas.AI_LABELS),
        "human_annotations": schemas.conform(human, schemas.HUMAN_ANNOTATIONS),
        "final_labels": schemas.conform(final, schemas.FINAL_LABELS),
    }
