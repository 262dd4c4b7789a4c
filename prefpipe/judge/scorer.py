"""The judge as a pointwise scorer, for best-of-n and rejection sampling.

Any callable `scorer(prompts, responses) -> np.ndarray` can rank samples (the reward model is one);
this is the default: the LLM rates each response from 1 to 10 under the guidelines (template
score_v1, a `SCORE: N` last line parsed as strictly as verdicts, one retry with a reminder), and
the score is mapped to [0, 1] as (N - 1) / 9. A response it could not score is NaN, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from prefpipe.judge.template import load_template
from prefpipe.judge.verdict import parse_score
from prefpipe.llm.request import ChatRequest

if TYPE_CHECKING:
    from prefpipe.core.guidelines import Guidelines
    from prefpipe.llm.client import LLMClient

SCORE_PLACEHOLDERS = frozenset({"guidelines", "rubric", "prompt", "response"})
LOW, HIGH = 1, 10


class JudgeScorer:
    def __init__(self, client: "LLMClient", guidelines: "Guidelines", model: str, *, template: str = "score_v1", max_tokens: int = 512):
        self.client = client
        self.guidelines = guidelines
        self.model = model
        self.template = load_template(template, required=frozenset({"response"}), allowed=SCORE_PLACEHOLDERS)
        self.max_tokens = max_tokens
        self.name = f"judge:{model}"
        self.problems: list[str | None] = []
        """Why each response of the last call has no score (None where it has one)."""

    def __call__(self, prompts: Sequence[str], responses: Sequence[str], *, item_ids: Sequence[str] | None = None) -> np.ndarray:
        ids = list(item_ids) if item_ids is not None else [""] * len(prompts)
        text, rubric = self.guidelines.text.strip(), self.guidelines.rubric_text()
        requests = [
            ChatRequest(
                model=self.model,
                messages=self.template.messages(guidelines=text, rubric=rubric, prompt=p, response=r),
                temperature=0.0,
                max_tokens=self.max_tokens,
                stage="scorer",
                actor=self.name,
                item_id=i,
            )
            for p, r, i in zip(prompts, responses, ids)
        ]
        answers = self.client.complete_many(requests)
        parsed = [parse_score(a.text) if a.ok else None for a in answers]
        retry = [k for k, (a, p) in enumerate(zip(answers, parsed)) if a.ok and p is not None and p.value is None]
        if retry:
            again = self.client.complete_many(
                [requests[k].with_reply(answers[k].text or "", self.template.reminder, stage="scorer_retry") for k in retry]
            )
            for k, answer in zip(retry, again):
                if answer.ok:
                    second = parse_score(answer.text)
                    if second.value is not None:
                        parsed[k] = second
        scores = np.full(len(requests), np.nan)
        self.problems = []
        for k, (answer, p) in enumerate(zip(answers, parsed)):
            if p is not None and p.value is not None:
                scores[k] = (int(p.value) - LOW) / (HIGH - LOW)
                self.problems.append(None)
            else:
                self.problems.append(answer.error if p is None else p.problem)
        return scores
