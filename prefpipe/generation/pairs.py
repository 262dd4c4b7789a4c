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

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import schemas
from prefpipe.generation.candidates import Parsed, arrow_text, parse
from prefpipe.generation.config import GenerationConfig
from prefpipe.generation.dedup import drop_reason_array
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


@dataclass(frozen=True)
class _Rows:
    """The pairs before degenerate ones are found: one entry per response_pairs row, A and B as shown."""

    pair_id: pa.ChunkedArray
    prompt_id: pa.ChunkedArray
    prompt: pa.ChunkedArray
    text_a: pa.ChunkedArray
    text_b: pa.ChunkedArray
    model_a: pa.ChunkedArray
    model_b: pa.ChunkedArray
    params: pa.ChunkedArray
    reason: pa.ChunkedArray
    """Why the pair is incomplete (null: it is complete, or made of complete responses)."""


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
        rows, samples, calls = _existing(prompts, config), _empty_samples(), []
    else:
        if client is None:
            raise ValueError(f"strategy {config.strategy} calls a model: pass an LLM client")
        mark = len(client.ledger)
        samples = _sample(prompts, config, client)
        if config.strategy in ("best_of_n", "rejection_sampling"):
            samples = _score(samples, prompts, config, client, scorer, guidelines)
        rows = _from_sides(_choose(prompts, samples, config), prompts, config)
        calls = client.ledger[mark:]
    pairs = _finish(rows, config)
    usage = usage_frame(calls, client.prices) if calls and client is not None else schemas.empty(USAGE)
    return GenerationResult(pairs=pairs, usage=usage, samples=samples)


def existing_pairs_in_chunks(chunks: Iterable[pd.DataFrame], config: GenerationConfig) -> pd.DataFrame:
    """generate_pairs' pairs with `existing`, of prompts given a chunk at a time (whose ids are
    unique, as the prompts table's are): every pair depends on its own prompt only, so the result
    is the whole frame's, and only one chunk's candidates are parsed at a time."""
    if config.strategy != "existing":
        raise ValueError(f"existing_pairs_in_chunks: strategy {config.strategy!r} is not 'existing'")
    parts = [_owned(generate_pairs(chunk, config).pairs) for chunk in chunks]
    if not parts:
        return generate_pairs(schemas.empty({"prompt_id": "string", "prompt": "string", "candidates": "string"}), config).pairs
    pairs = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if pairs["pair_id"].nunique(dropna=False) != len(pairs):
        raise ValueError("existing_pairs_in_chunks: a prompt id repeats across chunks")
    return pairs


def _owned(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its Arrow text copied into buffers of its own. The texts are views into DuckDB's
    results (the chunk read, the candidates parsed), and a view keeps the whole result alive: kept
    for every chunk, they held twice the pairs' own text."""
    out = frame.copy(deep=False)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.StringDtype) and frame[name].dtype.storage == "pyarrow":
            text = pa.array(frame[name].array)
            out[name] = _series(text.take(pa.array(np.arange(len(text))))).set_axis(frame.index)
    return out


# -- existing ---------------------------------------------------------------------------------
FEWER_THAN_TWO = "fewer than two existing responses"
"""The drop reason of a prompt's row when it has fewer than two candidates (followed by how many)."""
EXISTING_CHUNK = 100_000
"""Prompts parsed at a time: the candidates' JSON of a chunk is parsed, paired and freed before the next."""


def _existing(prompts: pd.DataFrame, config: GenerationConfig) -> _Rows:
    """Every two candidates of each prompt, in file order, without a Python object per pair."""
    if "candidates" not in prompts.columns:
        raise ValueError("prompts: strategy existing needs a 'candidates' column (JSON list of {model, text})")
    pids = _prompt_ids(prompts["prompt_id"])
    prompt = arrow_text(prompts["prompt"])
    last = _last_row(pids)
    if last is not None:  # a repeated id: its last row's prompt, as a dict built from the rows keeps
        prompt = prompt.take(pa.array(last))
    parts = []
    for lo in range(0, len(prompts), EXISTING_CHUNK):
        hi = min(lo + EXISTING_CHUNK, len(prompts))
        parts.append(_existing_chunk(parse(prompts["candidates"].iloc[lo:hi], pids.slice(lo, hi - lo)), lo, config.params()))
    row = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    n = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    columns = [pa.chunked_array([c for p in parts for c in _chunks_of(p[2][k])], pa.large_string()) for k in range(6)]
    if len(row) != len(prompts):  # some prompt makes several pairs (one each otherwise, in order)
        rows = pa.array(row)
        pids, prompt = pids.take(rows), prompt.take(rows)
    return _Rows(_pair_ids(pids, n), pids, prompt, *columns)


def _existing_chunk(parsed: Parsed, first_row: int, base: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[pa.Array]]:
    """(prompt row, pair number, [text a, text b, model a, model b, strategy_params, reason]) of one chunk."""
    k = parsed.count
    per_row = np.where(k >= 2, k * (k - 1) // 2, 1)
    row = np.repeat(np.arange(len(k)), per_row)
    n = np.arange(len(row)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    i = np.full(len(row), -1, dtype=np.int64)
    j = np.full(len(row), -1, dtype=np.int64)
    k_of = k[row]
    for size in np.flatnonzero(np.bincount(k_of[k_of >= 2])):
        at = np.flatnonzero(k_of == size)
        first, second = np.triu_indices(int(size), 1)  # itertools.combinations' order
        i[at], j[at] = first[n[at]], second[n[at]]
    start = np.concatenate([[0], np.cumsum(k)[:-1]]).astype(np.int64)[row]
    missing = i < 0
    if parsed.two is not None:
        text_a, text_b, model_a, model_b = parsed.two
    else:
        take_a, take_b = pa.array(start + i, mask=missing), pa.array(start + j, mask=missing)
        text_a, text_b = parsed.text.take(take_a), parsed.text.take(take_b)
        model_a, model_b = parsed.model.take(take_a), parsed.model.take(take_b)
    code = np.where(missing, 0, j * (j - 1) // 2 + i + 1)  # one per (i, j): the text is made once for each
    _, first_at, inverse = np.unique(code, return_index=True, return_inverse=True)
    params = [_params_text(base, int(i[at]), int(j[at])) for at in first_at]
    fewer = np.flatnonzero(np.bincount(k[k < 2], minlength=2))
    reason_codes = np.full(len(row), -1, dtype=np.int64)
    reason_codes[missing] = np.searchsorted(fewer, k_of[missing])
    reasons = pa.array([f"{FEWER_THAN_TWO} ({int(c)})" for c in fewer], pa.large_string()).take(pa.array(reason_codes, mask=reason_codes < 0))
    columns = [text_a, text_b, model_a, model_b, pa.array(params, pa.large_string()).take(pa.array(inverse.ravel())), reasons]
    return row + first_row, n, columns


def _chunks_of(array: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def _params_text(base: dict[str, Any], i: int, j: int) -> str:
    """strategy_params of a pair of candidates i and j (-1: no pair)."""
    meta_a = {"role": "existing", "candidate": i} if i >= 0 else {}
    meta_b = {"role": "existing", "candidate": j} if j >= 0 else {}
    return json.dumps({**base, "a": meta_a, "b": meta_b}, ensure_ascii=False, sort_keys=True)


def _prompt_ids(column: pd.Series) -> pa.ChunkedArray:
    """`column.astype(str)` (missing values become "<NA>", "None", "nan"), as Arrow text."""
    if str(column.dtype) == "string" and not column.isna().any():
        return arrow_text(column)
    if column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) == "string":
        return arrow_text(column)
    return arrow_text(column.astype(str))


def _last_row(pids: pa.ChunkedArray) -> np.ndarray | None:
    """For each row, the last row with its id (the one `dict(zip(ids, prompts))` keeps); None when no id repeats."""
    encoded = pc.dictionary_encode(pids).combine_chunks() if len(pids) else None
    if encoded is None or len(encoded.dictionary) == len(pids):
        return None
    codes = encoded.indices.to_numpy()
    last = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(last, codes, np.arange(len(codes)))
    return last[codes]


def _pair_ids(prompt_id: pa.ChunkedArray, n: np.ndarray) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(prompt_id, pa.array(n).cast(pa.large_string()), pa.scalar(":", pa.large_string()))


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


def _from_sides(sides: list[tuple[str, int, _Side, _Side, str | None]], prompts: pd.DataFrame, config: GenerationConfig) -> _Rows:
    """The rows of a sampled strategy's pairs, A and B shown in a random order (stable per pair)."""
    prompt_of = dict(zip(prompts["prompt_id"].astype(str), prompts["prompt"]))
    pair_ids = [f"{pid}:{n}" for pid, n, _, _, _ in sides]
    first = [s[2] for s in sides]
    second = [s[3] for s in sides]
    swap = swap_mask(pair_ids, config.seed)
    a = [s if flip else f for f, s, flip in zip(first, second, swap)]
    b = [f if flip else s for f, s, flip in zip(first, second, swap)]
    base = config.params()
    params = [json.dumps({**base, "a": x.meta, "b": y.meta}, ensure_ascii=False, sort_keys=True) for x, y in zip(a, b)]
    return _Rows(
        *(
            _text(values)
            for values in (
                pair_ids, [s[0] for s in sides], [prompt_of[s[0]] for s in sides], [x.text for x in a], [y.text for y in b],
                [x.model for x in a], [y.model for y in b], params, [s[4] for s in sides],
            )
        )
    )


def _text(values: list[Any]) -> pa.ChunkedArray:
    """Python values as Arrow text, converted as `astype("string")` converts them."""
    return arrow_text(pd.Series(values, dtype=object))


def _finish(rows: _Rows, config: GenerationConfig) -> pd.DataFrame:
    """The response_pairs frame: the degenerate pairs found among the complete ones with no reason
    yet; the text stays in Arrow (string[pyarrow] columns)."""
    complete = _valid(rows.text_a) & _valid(rows.text_b)
    known = _valid(rows.reason)
    reason = rows.reason.combine_chunks()
    todo = np.flatnonzero(complete & ~known)
    if len(todo):
        found = drop_reason_array(rows.text_a, rows.text_b, config.similarity_threshold, rows=None if len(todo) == len(complete) else todo)
        mask = np.zeros(len(complete), dtype=bool)
        mask[todo] = True
        reason = pc.replace_with_mask(reason, pa.array(mask), found.cast(reason.type))
    dropped = _valid(reason) & (~complete | config.drops_degenerate())
    frame = pd.DataFrame(
        {
            "pair_id": _series(rows.pair_id),
            "prompt_id": _series(rows.prompt_id),
            "prompt": _series(rows.prompt),
            "response_a": _series(rows.text_a),
            "response_b": _series(rows.text_b),
            "model_a": _series(rows.model_a),
            "model_b": _series(rows.model_b),
            "strategy": _series(pa.chunked_array([pa.repeat(pa.scalar(config.strategy, pa.large_string()), len(complete))])),
            "strategy_params": _series(rows.params),
            "dropped": pd.array(dropped, dtype="boolean"),
            "drop_reason": _series(reason),
        }
    )
    return schemas.conform(frame, schemas.RESPONSE_PAIRS, name="response_pairs")


def _valid(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.is_valid(array), dtype=bool)


def _series(array: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])))
