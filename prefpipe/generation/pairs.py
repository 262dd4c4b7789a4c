"""response_pairs rows from prompts, by one of the five strategies of the design.

- existing: pairs of the completions already in the input (every two candidates of a prompt, in
  file order). A is always the first candidate, B the second: the file's order is kept so that
  labels imported with the file (which speak of "first" and "second") line up. No randomization.
- two_models: one sample from `model` and one from `model_b`, same temperature.
- two_temperatures: one model at 0.3 and at 1.0 (low_temperature / high_temperature).
- best_of_n: n samples at 0.8; the best and the worst by a scorer (the LLM judge by default, or any
  `scorer(prompts, responses) -> np.ndarray`, such as the reward model).
- rejection_sampling: n samples scored; the first that passes `threshold` against the first that
  fails it.

Every sampled strategy caches each sample by its index (a rerun reuses the same n samples), then
shows the two responses in a random order (seeded, stable per pair_id), and records in
`strategy_params` the configuration plus what each side is (role, model, temperature, sample
index, score). Pairs whose responses are empty, identical or nearly so are kept with dropped=True
and the reason; so are prompts where a pair could not be made (a generation that failed after its
retries, no sample passing the threshold...): nothing is silently lost.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefpipe.core import schemas
from prefpipe.generation.config import GenerationConfig
from prefpipe.generation.dedup import drop_reasons
from prefpipe.llm.request import ChatRequest
from prefpipe.llm.usage import USAGE, usage_frame

if TYPE_CHECKING:
    from prefpipe.core.guidelines import Guidelines
    from prefpipe.llm.client import LLMClient

Scorer = Callable[[list[str], list[str]], np.ndarray]

SAMPLE_COLUMNS = ("prompt_id", "role", "model", "temperature", "sample_index", "text", "finish_reason", "score", "error")


@dataclass
class GenerationResult:
    pairs: pd.DataFrame = field(repr=False)
    """schemas.RESPONSE_PAIRS columns (dropped pairs included, with their reason)."""
    usage: pd.DataFrame = field(repr=False)
    """llm.usage.USAGE columns: one row per generation or scorer call."""
    samples: pd.DataFrame = field(repr=False)
    """SAMPLE_COLUMNS: every sample drawn (and its score), for audit."""


@dataclass
class _Side:
    text: str | None
    model: str | None
    meta: dict[str, Any]


def generate_pairs(
    prompts: pd.DataFrame,
    config: GenerationConfig,
    client: "LLMClient | None" = None,
    *,
    scorer: Scorer | None = None,
    guidelines: "Guidelines | None" = None,
) -> GenerationResult:
    """Pairs for `prompts` (columns prompt_id, prompt and, for `existing`, candidates: a JSON list
    of {"model", "text"}). `client` is needed by every strategy but `existing`; `scorer` defaults
    to the judge scorer (which needs `guidelines`, default: load_guidelines())."""
    for column in ("prompt_id", "prompt"):
        if column not in prompts.columns:
            raise ValueError(f"prompts: missing column {column!r}")
    if config.strategy == "existing":
        sides, samples, calls = _existing(prompts), _empty_samples(), []
    else:
        if client is None:
            raise ValueError(f"strategy {config.strategy} calls a model: pass an LLM client")
        mark = len(client.ledger)
        samples = _sample(prompts, config, client)
        if config.strategy in ("best_of_n", "rejection_sampling"):
            samples = _score(samples, prompts, config, client, scorer, guidelines)
        sides = _choose(prompts, samples, config)
        calls = client.ledger[mark:]
    pairs = _finish(sides, prompts, config)
    usage = usage_frame(calls, client.prices) if calls and client is not None else schemas.empty(USAGE)
    return GenerationResult(pairs=pairs, usage=usage, samples=samples)


# -- existing ---------------------------------------------------------------------------------
def _candidates(raw: Any, prompt_id: str) -> list[dict[str, Any]]:
    items = json.loads(raw) if isinstance(raw, str) else (raw if isinstance(raw, list) else [])
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ValueError(f"prompts: prompt {prompt_id!r}: field candidates[{i}] must be an object with a text")
    return items


def _existing(prompts: pd.DataFrame) -> list[tuple[str, int, _Side, _Side, str | None]]:
    if "candidates" not in prompts.columns:
        raise ValueError("prompts: strategy existing needs a 'candidates' column (JSON list of {model, text})")
    out = []
    for pid, raw in zip(prompts["prompt_id"].astype(str), prompts["candidates"]):
        items = _candidates(raw, pid)
        if len(items) < 2:
            out.append((pid, 0, _Side(None, None, {}), _Side(None, None, {}), f"fewer than two existing responses ({len(items)})"))
            continue
        for n, (i, j) in enumerate(itertools.combinations(range(len(items)), 2)):
            first, second = items[i], items[j]
            out.append(
                (
                    pid,
                    n,
                    _Side(first["text"], first.get("model") or "unknown", {"role": "existing", "candidate": i}),
                    _Side(second["text"], second.get("model") or "unknown", {"role": "existing", "candidate": j}),
                    None,
                )
            )
    return out


# -- sampling ---------------------------------------------------------------------------------
def _plan(config: GenerationConfig) -> list[tuple[str, str, float, int]]:
    """(role, model, temperature, sample index) drawn for every prompt."""
    if config.strategy == "two_models":
        return [("model_a", config.model, config.temperature, 0), ("model_b", config.model_b or "", config.temperature, 0)]
    if config.strategy == "two_temperatures":
        return [("low", config.model, config.low_temperature, 0), ("high", config.model, config.high_temperature, 0)]
    return [("sample", config.model, config.sample_temperature, k) for k in range(config.n)]


def _sample(prompts: pd.DataFrame, config: GenerationConfig, client: "LLMClient") -> pd.DataFrame:
    plan = _plan(config)
    rows, requests = [], []
    for pid, prompt in zip(prompts["prompt_id"].astype(str), prompts["prompt"]):
        messages = ([("system", config.system_prompt)] if config.system_prompt else []) + [("user", prompt)]
        for role, model, temperature, k in plan:
            rows.append((pid, role, model, temperature, k))
            requests.append(
                ChatRequest(
                    model=model,
                    messages=tuple(messages),
                    temperature=temperature,
                    max_tokens=config.max_tokens,
                    sample_index=k,
                    stage="generation",
                    actor=config.strategy,
                    item_id=pid,
                )
            )
    answers = client.complete_many(requests)
    frame = pd.DataFrame(rows, columns=["prompt_id", "role", "model", "temperature", "sample_index"])
    frame["text"] = [a.text if a.ok else None for a in answers]
    frame["finish_reason"] = [a.finish_reason for a in answers]
    frame["score"] = np.nan
    frame["error"] = [None if a.ok else (a.error or a.status) for a in answers]
    return frame[list(SAMPLE_COLUMNS)]


def _empty_samples() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in SAMPLE_COLUMNS})


def _score(
    samples: pd.DataFrame,
    prompts: pd.DataFrame,
    config: GenerationConfig,
    client: "LLMClient",
    scorer: Scorer | None,
    guidelines: "Guidelines | None",
) -> pd.DataFrame:
    from prefpipe.judge.scorer import JudgeScorer

    if scorer is None:
        if config.scorer != "judge":
            raise ValueError(f"config.scorer is {config.scorer!r} but no scorer was passed")
        if guidelines is None:
            from prefpipe.core.guidelines import load_guidelines

            guidelines = load_guidelines()
        scorer = JudgeScorer(client, guidelines, config.scorer_model or config.model, template=config.scorer_template)
    ok = samples["text"].notna().to_numpy()
    prompt_of = dict(zip(prompts["prompt_id"].astype(str), prompts["prompt"]))
    texts = samples.loc[ok, "text"].tolist()
    owners = samples.loc[ok, "prompt_id"].tolist()
    asked = [prompt_of[p] for p in owners]
    scores = scorer(asked, texts, item_ids=owners) if isinstance(scorer, JudgeScorer) else scorer(asked, texts)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    if len(scores) != len(texts):
        raise ValueError(f"scorer returned {len(scores)} scores for {len(texts)} responses")
    samples = samples.copy()
    samples.loc[ok, "score"] = scores
    if isinstance(scorer, JudgeScorer):
        problems = pd.Series(scorer.problems, index=samples.index[ok], dtype=object)
        samples.loc[ok, "error"] = problems.where(problems.notna(), None)
    return samples


def _side(row: pd.Series | None, role: str) -> _Side:
    if row is None:
        return _Side(None, None, {"role": role})
    meta: dict[str, Any] = {"role": role, "temperature": float(row["temperature"]), "sample_index": int(row["sample_index"])}
    if pd.notna(row["score"]):
        meta["score"] = round(float(row["score"]), 6)
    if row["finish_reason"] not in (None, "stop"):
        meta["finish_reason"] = row["finish_reason"]
    return _Side(row["text"], row["model"], meta)


def _choose(prompts: pd.DataFrame, samples: pd.DataFrame, config: GenerationConfig) -> list[tuple[str, int, _Side, _Side, str | None]]:
    """The two sides of each prompt's pair, before A/B randomization (side 1 = best/accepted/low/model_a)."""
    out = []
    groups = {pid: g for pid, g in samples.groupby("prompt_id", sort=False)}
    for pid in prompts["prompt_id"].astype(str):
        g = groups[pid]
        failed = g[g["text"].isna()]
        if config.strategy in ("two_models", "two_temperatures"):
            first, second = g.iloc[0], g.iloc[1]
            reason = None
            if len(failed):
                reason = "generation failed: " + "; ".join(f"{r.role} ({r.model}): {r.error}" for r in failed.itertuples())
            out.append((pid, 0, _side(first, str(first["role"])), _side(second, str(second["role"])), reason))
            continue
        scored = g[g["score"].notna()].sort_values("sample_index", kind="stable")
        if config.strategy == "best_of_n":
            if len(scored) < 2:
                out.append((pid, 0, _side(None, "best"), _side(None, "worst"), f"fewer than two of {len(g)} samples could be generated and scored ({len(scored)})"))
                continue
            best, worst = scored.loc[scored["score"].idxmax()], scored.loc[scored["score"].idxmin()]
            reason = None if best["score"] > worst["score"] else f"all {len(scored)} scored samples got the same score"
            out.append((pid, 0, _side(best, "best"), _side(worst, "worst"), reason))
        else:
            passing = scored[scored["score"] >= config.threshold]
            failing = scored[scored["score"] < config.threshold]
            accepted = passing.iloc[0] if len(passing) else None
            rejected = failing.iloc[0] if len(failing) else None
            reason = None
            if accepted is None:
                reason = f"no sample passed the threshold {config.threshold:g} ({len(scored)} of {len(g)} scored)"
            elif rejected is None:
                reason = f"no sample failed the threshold {config.threshold:g} ({len(scored)} of {len(g)} scored)"
            out.append((pid, 0, _side(accepted, "accepted"), _side(rejected, "rejected"), reason))
    return out


# -- the rows ---------------------------------------------------------------------------------
def swap_mask(pair_ids: Sequence[str], seed: int) -> np.ndarray:
    """Stable coin flips per pair_id: the same pair gets the same order on every rerun."""
    keys = np.array([f"{seed}\x1f{p}" for p in pair_ids], dtype=object)
    if len(keys) == 0:
        return np.zeros(0, dtype=bool)
    return (pd.util.hash_array(keys) & 1).astype(bool)


def _finish(sides: list[tuple[str, int, _Side, _Side, str | None]], prompts: pd.DataFrame, config: GenerationConfig) -> pd.DataFrame:
    prompt_of = dict(zip(prompts["prompt_id"].astype(str), prompts["prompt"]))
    pair_ids = [f"{pid}:{n}" for pid, n, _, _, _ in sides]
    first = [s[2] for s in sides]
    second = [s[3] for s in sides]
    reasons = np.array([s[4] for s in sides], dtype=object)
    complete = np.array([a.text is not None and b.text is not None for a, b in zip(first, second)], dtype=bool)
    idx = np.flatnonzero(complete & (reasons == None))  # noqa: E711 - elementwise
    if len(idx):
        reasons[idx] = drop_reasons([first[i].text for i in idx], [second[i].text for i in idx], config.similarity_threshold)
    swap = swap_mask(pair_ids, config.seed) if config.strategy != "existing" else np.zeros(len(sides), dtype=bool)
    a = [s if flip else f for f, s, flip in zip(first, second, swap)]
    b = [f if flip else s for f, s, flip in zip(first, second, swap)]
    base = config.params()
    params = [json.dumps({**base, "a": x.meta, "b": y.meta}, ensure_ascii=False, sort_keys=True) for x, y in zip(a, b)]
    frame = pd.DataFrame(
        {
            "pair_id": pair_ids,
            "prompt_id": [s[0] for s in sides],
            "prompt": [prompt_of[s[0]] for s in sides],
            "response_a": [x.text for x in a],
            "response_b": [y.text for y in b],
            "model_a": [x.model for x in a],
            "model_b": [y.model for y in b],
            "strategy": config.strategy,
            "strategy_params": params,
            "dropped": (reasons != None) & (~complete | config.drops_degenerate()),  # noqa: E711 - elementwise
            "drop_reason": reasons,
        }
    )
    return schemas.conform(frame, schemas.RESPONSE_PAIRS, name="response_pairs")
