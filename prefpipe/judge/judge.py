"""The AI judge over a frame of response pairs: the ai_labels rows, their usage and bias stats.

Each (pair, judge) is asked twice by default, once with the pair's own order (A shown first) and
once swapped; the swapped verdict is mapped back to the pair's order. Per order the answer is
parsed strictly; an unparseable answer gets one retry with a reminder, then the row is "unparsed"
(raw text kept) and goes to people. The two orders then combine:

- either order failed (HTTP, after bounded retries) -> "failed", no label (a rerun retries it);
- either order unparsed -> "unparsed", no label;
- directions differ (A vs B, or a preference vs a tie) -> "inconsistent", no label;
- same label -> that label; same direction, different strength -> the weaker one (closer to a tie).

Confidence: with log-probabilities, the probability the model gave its own verdict tokens,
averaged over the two orders (the smaller one when the strengths differ); without them, from
order consistency alone (`agree_confidence` / `same_direction_confidence`), and unknown (NaN)
for a single-order verdict without log-probabilities. Rows with no label have no confidence.

Token counts and cost per row add up every call the row made (both orders, reminders), at the
price the answer was bought for, even when this run took it from the cache.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prefpipe.core import schemas
from prefpipe.judge.bias import bias_stats
from prefpipe.judge.template import PromptTemplate, load_template
from prefpipe.judge.verdict import parse_verdict, span_probability
from prefpipe.core.labels import DIRECTION, STRENGTH, SWAP
from prefpipe.judge.batch_judge import bulk_ready, judge_batch
from prefpipe.llm.batch_files import BatchLimits
from prefpipe.llm.request import ChatRequest, Completion
from prefpipe.llm.usage import usage_frame

if TYPE_CHECKING:
    from prefpipe.core.guidelines import Guidelines
    from prefpipe.llm.client import LLMClient

PAIR_PLACEHOLDERS = frozenset({"guidelines", "rubric", "prompt", "response_a", "response_b"})
REQUIRED_PAIR_COLUMNS = ("pair_id", "prompt", "response_a", "response_b")
ORDER_NAMES = {"ab": "A/B", "ba": "B/A"}

VERDICT_COLUMNS = {
    "pair_id": "string",
    "judge": "string",
    "order": "string",  # ab: the pair's own order shown; ba: swapped
    "status": "string",  # ok | unparsed | failed | pending
    "raw_label": "string",  # the verdict as the judge wrote it, about the slots it saw
    "label": "string",  # mapped back to the pair's own order
    "probability": "float64",  # probability of the verdict tokens, when log-probabilities came back
    "retried": "boolean",  # the reminder retry was used
    "problem": "string",  # parse problem or error text
    "len_a": "Int64",
    "len_b": "Int64",
}
"""One row per (pair, judge, order): the evidence behind each ai_labels row and the bias stats."""


class JudgeConfig(BaseModel):
    """One judge: a model and a prompt template. Plain fields, so it can be run config."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Name in the output; default: the model (plus the template if not judge_v1).")
    model: str = Field("gpt-4o-mini", description="Model name as the endpoint knows it.")
    template: str = Field("judge_v1", description="Packaged template name or path to a template file.")
    temperature: float = 0.0
    max_tokens: int = Field(1024, description="Room for the reasoning and the verdict line.")
    both_orders: bool = Field(True, description="Judge A/B and B/A; off halves the cost and loses the consistency check.")
    logprobs: bool = Field(True, description="Ask for token log-probabilities; turn off for servers that reject the parameter.")
    retry_unparsed: bool = Field(True, description="One retry with a reminder when the verdict cannot be parsed.")
    agree_confidence: float = Field(0.9, description="Confidence when both orders agree exactly and no log-probabilities came back.")
    same_direction_confidence: float = Field(0.6, description="... when both orders agree on the direction only.")

    def judge_name(self) -> str:
        if self.name:
            return self.name
        return self.model if self.template == "judge_v1" else f"{self.model}:{self.template}"


@dataclass
class JudgeResult:
    labels: pd.DataFrame = field(repr=False)
    """schemas.AI_LABELS columns, one row per (pair, judge); rows still pending in the Batch API are left out."""
    verdicts: pd.DataFrame = field(repr=False)
    """VERDICT_COLUMNS, one row per (pair, judge, order)."""
    usage: pd.DataFrame = field(repr=False)
    """llm.usage.USAGE columns, one row per call."""
    bias: pd.DataFrame = field(repr=False)
    """judge.bias.BIAS_COLUMNS, one row per judge."""
    problems: pd.DataFrame = field(repr=False)
    """pair_id, judge, problem: why a row is not ok (parse problems, errors, the inconsistency)."""
    pending: int = 0
    """(pair, judge) rows waiting for Batch API answers; run again once the batch is done."""
    batch_jobs: list[str] = field(default_factory=list)
    batch_files: list[dict[str, Any]] = field(default_factory=list)
    """Input files this run submitted (file, requests, bytes, job_id)."""
    ingested: int = 0
    """Batch API answers this run ingested."""

    def bias_dict(self) -> dict[str, dict[str, Any]]:
        return {row["judge"]: {k: v for k, v in row.items() if k != "judge"} for row in self.bias.to_dict("records")}


def validate_pairs(pairs: pd.DataFrame, *, source: str = "pairs") -> pd.DataFrame:
    """The pairs to judge (dropped ones left out), or a ValueError naming the field and pair."""
    missing = [c for c in REQUIRED_PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
    todo = pairs
    if "dropped" in pairs.columns:
        todo = pairs[~pairs["dropped"].fillna(False).astype(bool)]
    for column in REQUIRED_PAIR_COLUMNS:
        bad = todo[column].isna()
        if bad.any():
            raise ValueError(f"{source}: field {column!r} is missing for pair {todo.loc[bad, 'pair_id'].iloc[0]!r} ({int(bad.sum())} pair(s))")
    dup = todo["pair_id"].duplicated()
    if dup.any():
        raise ValueError(f"{source}: pair_id {todo.loc[dup, 'pair_id'].iloc[0]!r} appears more than once")
    return todo.reset_index(drop=True)


@dataclass
class _Judge:
    config: JudgeConfig
    template: PromptTemplate
    name: str


def _request(judge: _Judge, rendered: tuple[str, str], pair: dict[str, Any], order: str) -> ChatRequest:
    """The request for one order; `rendered` is the guidelines' (text, rubric), rendered once per run."""
    text, rubric = rendered
    first, second = (pair["response_a"], pair["response_b"]) if order == "ab" else (pair["response_b"], pair["response_a"])
    messages = judge.template.messages(
        guidelines=text,
        rubric=rubric,
        prompt=pair["prompt"],
        response_a=first,
        response_b=second,
    )
    cfg = judge.config
    return ChatRequest(
        model=cfg.model,
        messages=messages,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        logprobs=cfg.logprobs,
        stage="judge",
        actor=judge.name,
        item_id=str(pair["pair_id"]),
    )


def _order_steps(judge: _Judge, request: ChatRequest, order: str) -> Generator[ChatRequest, Completion, dict[str, Any]]:
    """One order's dialogue as a generator: it yields the requests it needs (the question, then
    maybe the reminder) and is sent their answers; it returns the order's verdict row. Written
    once, driven either from the cache alone (no event loop) or by the async client."""
    out: dict[str, Any] = {"order": order, "retried": False, "raw": {}}
    first = yield request
    if not first.ok:
        return {**out, "status": first.status, "problem": first.error}
    out["raw"][order] = first.text
    final, parsed = first, parse_verdict(first.text)
    if parsed.value is None and judge.config.retry_unparsed:
        second = yield request.with_reply(first.text or "", judge.template.reminder, stage="judge_retry")
        out["retried"] = True
        if second.status == "pending":
            return {**out, "status": "pending", "problem": None}
        if not second.ok:
            return {**out, "status": "unparsed", "problem": f"{parsed.problem}; reminder retry failed: {second.error}"}
        out["raw"][f"{order}_retry"] = second.text
        retry_parsed = parse_verdict(second.text)
        if retry_parsed.value is None:
            return {**out, "status": "unparsed", "problem": f"{parsed.problem}; after the reminder: {retry_parsed.problem}"}
        final, parsed = second, retry_parsed
    elif parsed.value is None:
        return {**out, "status": "unparsed", "problem": parsed.problem}
    raw_label = parsed.value
    return {
        **out,
        "status": "ok",
        "raw_label": raw_label,
        "label": raw_label if order == "ab" else SWAP[raw_label],
        "probability": span_probability(final.text or "", final.token_ends, final.token_logprobs, parsed.span),
    }


def _from_cache(client: "LLMClient", steps: Generator[ChatRequest, Completion, dict[str, Any]]) -> dict[str, Any] | None:
    """Drive `steps` from stored answers only; None as soon as one is missing (nothing recorded)."""
    taken: list[Completion] = []
    try:
        request = next(steps)
        while True:
            answer = client.lookup(request)
            if answer is None:
                return None
            taken.append(answer)
            request = steps.send(answer)
    except StopIteration as done:
        client.ledger.extend(taken)
        return done.value


async def _from_client(client: "LLMClient", steps: Generator[ChatRequest, Completion, dict[str, Any]]) -> dict[str, Any]:
    try:
        request = next(steps)
        while True:
            request = steps.send(await client.acomplete(request))
    except StopIteration as done:
        return done.value


@dataclass
class _Plan:
    judges: list[_Judge]
    jobs: list[tuple[_Judge, dict[str, Any], str, ChatRequest]]
    """(judge, pair, order, first request), one per order asked."""


def _judges(judges: list[JudgeConfig]) -> list[_Judge]:
    if not judges:
        raise ValueError("judges: configure at least one judge")
    prepared = [_Judge(cfg, load_template(cfg.template, required=PAIR_PLACEHOLDERS - {"guidelines", "rubric"}, allowed=PAIR_PLACEHOLDERS), cfg.judge_name()) for cfg in judges]
    names = [j.name for j in prepared]
    if len(set(names)) != len(names):
        raise ValueError(f"judges: two judges are both named {next(n for n in names if names.count(n) > 1)!r}; give them distinct names")
    return prepared


def _prepare(pairs: pd.DataFrame, guidelines: "Guidelines", judges: list[JudgeConfig]) -> _Plan:
    todo = validate_pairs(pairs)
    prepared = _judges(judges)
    records = todo.to_dict("records")
    rendered = (guidelines.text.strip(), guidelines.rubric_text())
    jobs = [
        (judge, pair, order, _request(judge, rendered, pair, order))
        for judge in prepared
        for pair in records
        for order in (("ab", "ba") if judge.config.both_orders else ("ab",))
    ]
    return _Plan(prepared, jobs)


def _start(
    pairs: pd.DataFrame, guidelines: "Guidelines", judges: list[JudgeConfig], client: "LLMClient"
) -> tuple[_Plan, int, list[dict[str, Any] | None]]:
    """The plan, the client's ledger mark before it, and every order the cache alone can answer
    (None where a call must be made): the part of a run that needs no event loop."""
    plan = _prepare(pairs, guidelines, judges)
    client.prefetch([job[3] for job in plan.jobs])
    mark = len(client.ledger)
    return plan, mark, [_from_cache(client, _order_steps(j, req, order)) for j, _, order, req in plan.jobs]


async def _ask(client: "LLMClient", plan: _Plan, outcomes: list[dict[str, Any] | None], batch_api: bool) -> list[str]:
    """Fill the outcomes the cache could not give; returns the Batch API jobs still open."""
    missing = [k for k, o in enumerate(outcomes) if o is None]

    async def ask_all() -> None:
        answers = await asyncio.gather(*(_from_client(client, _order_steps(plan.jobs[k][0], plan.jobs[k][3], plan.jobs[k][2])) for k in missing))
        for k, answer in zip(missing, answers):
            outcomes[k] = answer

    if not batch_api:
        await ask_all()
        return []
    async with client.batch_api() as batch:
        await ask_all()
    return batch.open_jobs()


def judge_pairs(
    pairs: pd.DataFrame,
    guidelines: "Guidelines",
    judges: list[JudgeConfig],
    client: "LLMClient",
    *,
    batch_api: bool = False,
    batch_limits: BatchLimits | None = None,
) -> JudgeResult:
    """Judge every pair (rows with dropped=True are skipped) with every judge.

    Answers already in the cache are used without starting an event loop; the rest are asked
    concurrently. batch_api=True sends nothing at once: cache misses go to OpenAI Batch API jobs
    (files within `batch_limits`) and their rows are counted as `pending`; call again later (a
    sensor, the next run) to ingest the answers. That path runs as tables (`batch_judge`) unless a
    judge's template puts the pair's text in the system message.
    """
    if batch_api:
        prepared = _judges(judges)
        if client.cache is not None and all(bulk_ready(j) for j in prepared):
            rendered = (guidelines.text.strip(), guidelines.rubric_text())
            steps = lambda judge, pair, order: _order_steps(judge, _request(judge, rendered, pair, order), order)  # noqa: E731
            frames = judge_batch(validate_pairs(pairs), prepared, rendered, client, batch_limits, steps)
            return _finish(frames["verdicts"], frames["raws"], frames["usage"], prepared, guidelines, frames["batch_jobs"], frames["collector"])
    plan, mark, outcomes = _start(pairs, guidelines, judges, client)
    batch_jobs: list[str] = []
    if batch_api or any(o is None for o in outcomes):
        batch_jobs = client.run(lambda: _ask(client, plan, outcomes, batch_api))
    return _result(plan, outcomes, client.ledger[mark:], client, guidelines, batch_jobs)


async def judge_pairs_async(
    pairs: pd.DataFrame,
    guidelines: "Guidelines",
    judges: list[JudgeConfig],
    client: "LLMClient",
    *,
    batch_api: bool = False,
) -> JudgeResult:
    """`judge_pairs` for callers that already run an event loop."""
    plan, mark, outcomes = _start(pairs, guidelines, judges, client)
    batch_jobs = await _ask(client, plan, outcomes, batch_api)
    return _result(plan, outcomes, client.ledger[mark:], client, guidelines, batch_jobs)


def _result(
    plan: _Plan,
    outcomes: list[dict[str, Any] | None],
    calls: list[Completion],
    client: "LLMClient",
    guidelines: "Guidelines",
    batch_jobs: list[str],
) -> JudgeResult:
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(plan.jobs)
    jobs = plan.jobs
    verdicts = pd.DataFrame(
        {
            "pair_id": [str(p["pair_id"]) for _, p, _, _ in jobs],
            "judge": [j.name for j, _, _, _ in jobs],
            "order": [o["order"] for o in done],
            "status": [o["status"] for o in done],
            "raw_label": [o.get("raw_label") for o in done],
            "label": [o.get("label") for o in done],
            "probability": [o.get("probability") for o in done],
            "retried": [o["retried"] for o in done],
            "problem": [o.get("problem") for o in done],
            "len_a": [len(p["response_a"]) for _, p, _, _ in jobs],
            "len_b": [len(p["response_b"]) for _, p, _, _ in jobs],
        }
    ).astype(VERDICT_COLUMNS)
    answers: dict[tuple[str, str], dict[str, str]] = {}
    for (judge, pair, _, _), outcome in zip(jobs, done):
        answers.setdefault((str(pair["pair_id"]), judge.name), {}).update(outcome["raw"])
    raws = pd.Series({key: json.dumps(texts, ensure_ascii=False) for key, texts in answers.items()}, dtype=object)
    return _finish(verdicts, raws, usage_frame(calls, client.prices), plan.judges, guidelines, batch_jobs)


def _finish(
    verdicts: pd.DataFrame, raws: pd.Series, usage: pd.DataFrame, judges: list[_Judge], guidelines: "Guidelines", batch_jobs: list[str], batch: Any = None
) -> JudgeResult:
    """The result from the per-order verdicts, the raw answers per (pair, judge) and the calls."""
    verdicts = verdicts.astype(VERDICT_COLUMNS)
    labels_all, problems = combine_orders(verdicts, raws, {j.name: j for j in judges}, usage, guidelines.version)
    pending = labels_all["status"] == "pending"
    return JudgeResult(
        labels=schemas.conform(labels_all[~pending], schemas.AI_LABELS, name="ai_labels"),
        verdicts=verdicts,
        usage=usage,
        bias=bias_stats(verdicts, labels_all),
        problems=problems[problems["status"] != "pending"].reset_index(drop=True),
        pending=int(pending.sum()),
        batch_jobs=batch_jobs,
        batch_files=list(batch.files) if batch is not None else [],
        ingested=len(batch.ingested) if batch is not None else 0,
    )


def combine_orders(
    verdicts: pd.DataFrame,
    raws: pd.Series,
    judges: dict[str, _Judge],
    usage: pd.DataFrame,
    guideline_version: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (pair, judge) from its per-order verdicts (vectorized over rows)."""
    keys = ["pair_id", "judge"]
    ab = verdicts[verdicts["order"] == "ab"].set_index(keys)
    ba = verdicts[verdicts["order"] == "ba"].set_index(keys).reindex(ab.index)
    both = np.array([judges[j].config.both_orders for j in ab.index.get_level_values("judge")], dtype=bool)
    st_ab = ab["status"].to_numpy(dtype=object)
    st_ba = np.where(both, ba["status"].fillna("missing").to_numpy(dtype=object), "ok")
    lab_ab = ab["label"].astype(object).where(ab["label"].notna(), None).to_numpy(dtype=object)
    lab_ba = np.where(both, ba["label"].astype(object).where(ba["label"].notna(), None).to_numpy(dtype=object), lab_ab)
    dir_ab = pd.Series(lab_ab).map(DIRECTION).to_numpy(dtype=object)
    dir_ba = pd.Series(lab_ba).map(DIRECTION).to_numpy(dtype=object)
    any_status = lambda s: (st_ab == s) | (st_ba == s)  # noqa: E731
    status = np.select(
        [any_status("failed"), any_status("pending"), any_status("unparsed"), dir_ab != dir_ba],
        ["failed", "pending", "unparsed", "inconsistent"],
        "ok",
    )
    ok = status == "ok"
    same = ok & (lab_ab == lab_ba)
    strength_ab = pd.Series(lab_ab).map(STRENGTH).to_numpy(dtype="float64")
    strength_ba = pd.Series(lab_ba).map(STRENGTH).to_numpy(dtype="float64")
    label = np.where(ok, np.where(strength_ab <= strength_ba, lab_ab, lab_ba), None)

    p_ab = ab["probability"].to_numpy(dtype="float64", na_value=np.nan)
    p_ba = np.where(both, ba["probability"].to_numpy(dtype="float64", na_value=np.nan), p_ab)
    have_p = ~np.isnan(p_ab) & ~np.isnan(p_ba)
    from_logprobs = np.where(same, (p_ab + p_ba) / 2, np.minimum(p_ab, p_ba))
    agree = np.array([judges[j].config.agree_confidence for j in ab.index.get_level_values("judge")])
    direction_only = np.array([judges[j].config.same_direction_confidence for j in ab.index.get_level_values("judge")])
    from_consistency = np.where(both, np.where(same, agree, direction_only), np.nan)
    confidence = np.where(ok, np.where(have_p, from_logprobs, from_consistency), np.nan)

    problem = [
        "; ".join(f"{ORDER_NAMES[o]} order: {text}" for o, text in (("ab", a), ("ba", b)) if isinstance(text, str)) or None
        for a, b in zip(ab["problem"].to_numpy(dtype=object), np.where(both, ba["problem"].to_numpy(dtype=object), None))
    ]
    problem = np.where(status == "inconsistent", [f"A/B order said {x}, B/A order said {y} (mapped back)" for x, y in zip(lab_ab, lab_ba)], np.array(problem, dtype=object))

    spend = usage.groupby(["item_id", "actor"], sort=False)[["prompt_tokens", "completion_tokens", "cost_usd"]].sum(min_count=1)
    spend.index.names = keys
    spend = spend.reindex(ab.index)

    labels = pd.DataFrame(
        {
            "pair_id": ab.index.get_level_values("pair_id"),
            "judge": ab.index.get_level_values("judge"),
            "label": label,
            "status": status,
            "confidence": confidence,
            "label_ab": lab_ab,
            "label_ba": np.where(both, lab_ba, None),
            "raw": raws.reindex(ab.index).to_numpy(dtype=object),
            "guideline_version": guideline_version,
            "judge_prompt_version": [judges[j].template.version for j in ab.index.get_level_values("judge")],
            "prompt_tokens": spend["prompt_tokens"].to_numpy(),
            "completion_tokens": spend["completion_tokens"].to_numpy(),
            "cost_usd": spend["cost_usd"].to_numpy(dtype="float64", na_value=np.nan),
        }
    )
    problems = pd.DataFrame({"pair_id": labels["pair_id"], "judge": labels["judge"], "status": status, "problem": problem})
    return labels, problems[problems["status"] != "ok"].reset_index(drop=True)
