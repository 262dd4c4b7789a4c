"""`judge_pairs(..., batch_api=True)` at a million pairs: the judge's Batch API path as tables.

Every (judge, pair, order) is a row of a DuckDB table with its cache key (`llm.bulk`: the same key
a `ChatRequest` has), never a Python object. One run: poll the open jobs and ingest the finished
ones (streamed, `llm.batch`); read the stored answers a chunk of rows at a time and read their
verdicts; submit the rows that have no answer and are not waiting in a job, as lines DuckDB
writes; then combine the orders as the per-request path does.

Reading a verdict is vectorized for the answers that end in one plain line `VERDICT: X` and
mention "verdict" nowhere else (ASCII text): for those, `parse_verdict` and `span_probability`
would give exactly this label and probability (the tests hold the two together). Every other
answer (no verdict, two, decorated, non-ASCII, a reminder retry to make or read) goes through the
per-request generator `_order_steps`, so the rules live in one place. A template whose system
message uses the pair's text cannot be split this way: those judges take the per-request path.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from prefpipe.core.labels import SCALE, SWAP
from prefpipe.llm.batch import BatchCollector
from prefpipe.llm.batch_files import BatchLimits
from prefpipe.llm.bulk import BulkRequest, Column
from prefpipe.llm.cache import ANSWER_COLUMNS
from prefpipe.llm.request import ChatRequest, Completion
from prefpipe.llm.usage import USAGE, usage_frame

if TYPE_CHECKING:
    from prefpipe.llm.client import LLMClient

_Judge = Any
"""judge._Judge (config, template, name); not imported: judge.py imports this module."""
Steps = Callable[[Any, dict[str, Any], str], Generator[ChatRequest, Completion, dict[str, Any]]]
"""judge's per-order dialogue for (judge, pair, order): `_order_steps` over `_request`."""

_ROW_COLUMNS = ["i", "pair_row", "judge_row", "ord", "key", "status", "raw_label", "label", "probability", "retried", "problem", "fragment",
                "prompt_tokens", "completion_tokens", "cached", "batch", "slow"]
CHUNK_ROWS = 200_000
"""(judge, pair, order) rows whose answers are read from the cache at a time."""
PAIR_FIELDS = ("prompt", "response_a", "response_b")
_ASCII_SPACE = np.array([9, 10, 11, 12, 13, 28, 29, 30, 31, 32], dtype=np.uint8)  # str.isspace() among ASCII
_FAST = "(?:^|\\n)VERDICT: (" + "|".join(v.replace(">", ">") for v in SCALE) + ")$"


def bulk_ready(judge: "_Judge") -> bool:
    """The judge's system message is the same for every pair (it may use guidelines and rubric only)."""
    return not (set(judge.template.system.get_identifiers()) & set(PAIR_FIELDS))


def _pieces(template: string.Template, values: dict[str, str], swap: bool) -> tuple[str | Column, ...]:
    """A template section as literal text and pair columns (string.Template's own pattern)."""
    out: list[str | Column] = []
    text, at = template.template, 0
    for m in template.pattern.finditer(text):
        out.append(text[at : m.start()])
        at = m.end()
        name = m.group("named") or m.group("braced")
        if m.group("escaped") is not None:
            out.append(template.delimiter)
        elif name in values:
            out.append(values[name])
        else:
            out.append(Column({"response_a": "response_b", "response_b": "response_a"}.get(name, name) if swap else name))
    out.append(text[at:])
    return tuple(p for p in out if p != "")


def _bulk(judge: "_Judge", rendered: tuple[str, str], client: "LLMClient", order: str, steps: Steps) -> BulkRequest:
    sample = next(steps(judge, {"pair_id": "x", "prompt": "", "response_a": "", "response_b": ""}, "ab"))
    values = {"guidelines": rendered[0], "rubric": rendered[1]}
    system = judge.template.system.substitute(values).strip()
    user = _pieces(judge.template.user, values, swap=order == "ba")
    messages = ((("system", (system,)),) if system else ()) + (("user", user),)
    return BulkRequest.like(sample, messages, client.wire_body(sample))


class _Plan:
    """The rows to judge as a DuckDB table `plan` (i, pair_row, judge_row, ord, key) beside `pairs`."""

    def __init__(self, todo: pd.DataFrame, judges: list["_Judge"], rendered: tuple[str, str], client: "LLMClient", steps: Steps):
        self.con = duckdb.connect()
        self.con.execute("SET preserve_insertion_order = true")
        self.todo, self.judges = todo, judges
        frame = pa.table({"pair_row": np.arange(len(todo)), "pair_id": todo["pair_id"].astype(str).tolist(),
                          **{f: pa.array(todo[f].tolist(), pa.string()) for f in PAIR_FIELDS}})
        self.con.register("pairs", frame)
        self.bulk: dict[tuple[int, str], BulkRequest] = {}
        parts = []
        for j, judge in enumerate(judges):
            for order in ("ab", "ba") if judge.config.both_orders else ("ab",):
                bulk = self.bulk[(j, order)] = _bulk(judge, rendered, client, order, steps)
                contents = [c for _, c in bulk.contents_sql()]
                reader = self.con.execute(f"SELECT {', '.join(contents[bulk.shared():])} FROM pairs ORDER BY pair_row").to_arrow_reader(50_000)
                keys = [k for batch in reader for k in bulk.keys(zip(*(col.to_pylist() for col in batch.columns)))]
                parts.append(pa.table({"pair_row": np.arange(len(todo)), "judge_row": np.full(len(todo), j), "ord": [order] * len(todo), "key": keys}))
        self.con.register("planned", pa.concat_tables(parts))
        self.con.execute("CREATE TABLE plan AS SELECT (row_number() OVER () - 1)::BIGINT AS i, * FROM planned")
        self.n = int(self.con.execute("SELECT count(*) FROM plan").fetchone()[0])

    def chunk(self, start: int) -> pa.Table:
        return self.con.execute("SELECT i, pair_row, judge_row, ord, key FROM plan WHERE i >= ? AND i < ? ORDER BY i", [start, start + CHUNK_ROWS]).to_arrow_table()

    def lines(self, keys: list[str]) -> Any:
        """Record batches of the Batch API lines of `keys` (one line a key, DuckDB-written)."""
        self.con.register("wanted", pa.table({"key": pa.array(keys, pa.string())}))
        self.con.execute("CREATE OR REPLACE TEMP TABLE pick AS SELECT min(i) AS i FROM plan SEMI JOIN wanted USING (key) GROUP BY key")
        selects = []
        for (j, order), bulk in self.bulk.items():
            contents = [c for _, c in bulk.contents_sql()]
            selects.append(f"""SELECT p.i, p.key, '{bulk.model.replace("'", "''")}' AS model, ({bulk.line_sql('p.key', contents)})::VARCHAR AS line
                FROM plan p SEMI JOIN pick USING (i) JOIN pairs USING (pair_row) WHERE p.judge_row = {j} AND p.ord = '{order}'""")
        sql = f"SELECT key, model, line FROM ({' UNION ALL '.join(selects)}) ORDER BY i"
        return self.con.execute(sql).to_arrow_reader(10_000)


def _answers(client: "LLMClient", keys: list[str]) -> pa.Table:
    rows = client.cache.answer_columns(list(dict.fromkeys(keys))) if client.cache is not None else []
    columns = list(zip(*rows)) if rows else [[] for _ in ANSWER_COLUMNS]
    types = [pa.string(), pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(), pa.binary(), pa.binary(), pa.int64()]
    return pa.table({name: pa.array(list(col), t) for name, col, t in zip(ANSWER_COLUMNS, columns, types)})


def _fast_verdicts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The chunk's answers (table `joined`) with the plain one-line verdict, label and probability."""
    frame = con.execute(f"""
        SELECT i, ord, text, regexp_extract(text, '{_FAST}', 1) AS raw_label, token_ends, token_logprobs
        FROM joined WHERE text IS NOT NULL AND strlen(text) = length(text)
          AND length(text) - length(replace(lower(text), 'verdict', '')) = 7 AND regexp_matches(text, '{_FAST}')""").to_arrow_table()
    texts = frame.column("text").combine_chunks().cast(pa.large_string())
    out = frame.select(["i", "ord", "raw_label"]).to_pandas()
    value_lengths = out["raw_label"].str.len().to_numpy(dtype=np.int64)
    out["probability"] = _tail_probability(texts, frame.column("token_ends").to_pylist(), frame.column("token_logprobs").to_pylist(), value_lengths)
    out["label"] = np.where(out["ord"] == "ab", out["raw_label"], out["raw_label"].map(SWAP))
    return out


def _tail_probability(texts: pa.LargeStringArray, ends: list[bytes | None], logprobs: list[bytes | None], value_lengths: np.ndarray) -> np.ndarray:
    """`span_probability` over many ASCII answers whose value is their last `value_lengths` characters."""
    n = len(texts)
    out = np.full(n, np.nan)
    text_off = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset : texts.offset + n + 1]
    text_len = np.diff(text_off)
    e_len = np.array([0 if e is None else len(e) // 4 for e in ends], dtype=np.int64)
    l_len = np.array([0 if e is None else len(e) // 4 for e in logprobs], dtype=np.int64)
    flat_e = np.frombuffer(b"".join(e for e in ends if e is not None), "<u4").astype(np.int64)
    last = np.zeros(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(e_len)])
    has = e_len > 0
    last[has] = flat_e[starts[1:][has] - 1]
    ok = has & (e_len == l_len) & (last == text_len)
    if not ok.any():
        return out
    e_len, l_len = np.where(ok, e_len, 0), np.where(ok, l_len, 0)
    flat_e = np.frombuffer(b"".join(e for e, good in zip(ends, ok) if good), "<u4").astype(np.int64)
    flat_l = np.frombuffer(b"".join(e for e, good in zip(logprobs, ok) if good), "<f4").astype(np.float64)
    row = np.repeat(np.arange(n), e_len)
    first = np.concatenate([[0], np.cumsum(e_len)])[:-1]
    start = np.concatenate([[0], flat_e[:-1]])
    start[first[e_len > 0]] = 0
    span0 = text_len - value_lengths
    covers = (flat_e > span0[row]) & (start < text_len[row])
    data = np.frombuffer(texts.buffers()[2], np.uint8)
    visible = np.concatenate([[0], np.cumsum(~np.isin(data, _ASCII_SPACE))])
    g0, g1 = text_off[row] + start, text_off[row] + flat_e
    covers &= visible[g1] - visible[g0] > 0
    total = np.bincount(row, weights=np.where(covers, flat_l, 0.0), minlength=n)
    out[ok] = np.minimum(1.0, np.fromiter(map(math.exp, total[ok].tolist()), np.float64))  # math.exp, as span_probability: the same last bit
    return out


class _Run:
    """One Batch API run of the judge over a plan: its collector, its rows, its slow-path calls."""

    def __init__(self, plan: _Plan, steps: Steps, client: "LLMClient", collector: BatchCollector):
        self.plan, self.steps, self.client, self.collector = plan, steps, client, collector
        self.rows: list[pd.DataFrame] = []
        self.calls: list[Completion] = []
        self.missing: list[str] = []
        self.ingested = pa.table({"key": collector.ingested.array()})

    def judge_chunk(self, start: int) -> None:
        con, chunk = self.plan.con, self.plan.chunk(start)
        con.register("chunk", chunk)
        con.register("answers", _answers(self.client, chunk.column("key").to_pylist()))
        con.register("ingested", self.ingested)
        con.execute("""CREATE OR REPLACE TEMP TABLE joined AS SELECT c.*, a.text, a.prompt_tokens, a.completion_tokens, a.token_ends, a.token_logprobs,
                       a.batch, c.key IN (SELECT key FROM ingested) AS bought FROM chunk c LEFT JOIN answers a USING (key) ORDER BY i""")
        fast = _fast_verdicts(con)
        con.register("fast", pa.table({"i": pa.array(fast["i"].to_numpy(), pa.int64())}))
        base = con.execute("""SELECT i, pair_row, judge_row, ord, key, text, prompt_tokens, completion_tokens, coalesce(batch = 1, true) AS batch,
                              text IS NOT NULL AND NOT bought AS cached, i IN (SELECT i FROM fast) AS is_fast,
                              CASE WHEN text IS NOT NULL THEN '"' || ord || '": ' || to_json(text) END AS fragment FROM joined ORDER BY i""").df()
        quick = base[base["is_fast"]].merge(fast[["i", "raw_label", "label", "probability"]], on="i")
        quick["status"] = "ok"
        gone = base[base["text"].isna()].copy()
        gone["problem"] = gone["key"].map(self.collector.failed)
        gone["status"] = np.where(gone["problem"].notna(), "failed", "pending")
        self.missing += gone.loc[gone["status"] == "pending", "key"].tolist()
        self.rows += [r for r in (quick, gone) if len(r)]
        slow = base[~base["is_fast"] & base["text"].notna()]
        for i, row in zip(slow["i"].tolist(), slow.to_dict("records")):
            self._slow(row, i)

    def _slow(self, row: dict[str, Any], i: int) -> None:
        """One order read by the per-request generator (reminder retries included)."""
        judge = self.plan.judges[int(row["judge_row"])]
        steps = self.steps(judge, self.plan.todo.iloc[int(row["pair_row"])].to_dict(), row["ord"])
        request, taken = next(steps), []
        try:
            while True:
                answer = self.client.lookup(request) or self.collector.defer(request)
                if answer.cached and answer.key in self.collector.ingested:
                    answer.cached = False
                taken.append(answer)
                request = steps.send(answer)
        except StopIteration as done:
            outcome = done.value
        self.calls += taken
        fragment = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in outcome["raw"].items()) or None
        self.rows.append(pd.DataFrame([{"i": i, "pair_row": row["pair_row"], "judge_row": row["judge_row"], "ord": row["ord"], "status": outcome["status"],
                                        "raw_label": outcome.get("raw_label"), "label": outcome.get("label"), "probability": outcome.get("probability"),
                                        "retried": outcome["retried"], "problem": outcome.get("problem"), "fragment": fragment, "slow": True}]))


def judge_batch(todo: pd.DataFrame, judges: list["_Judge"], rendered: tuple[str, str], client: "LLMClient", limits: BatchLimits | None, steps: Steps) -> dict[str, Any]:
    """Poll, ingest, read verdicts, submit what is missing: the frames `judge._finish` wants.
    `rendered`: the guidelines' (text, rubric); `steps`: the judge's per-order dialogue."""
    cache = client.cache
    plan = _Plan(todo, judges, rendered, client, steps)
    collector = BatchCollector(cache, client.settings.resolved_base_url(), openai=lambda: client.session().openai, wire_body=client.wire_body, limits=limits)

    async def run() -> _Run:
        await collector.poll()
        client._absent.clear()  # the poll may have stored answers an earlier prefetch missed
        work = _Run(plan, steps, client, collector)
        for start in range(0, plan.n, CHUNK_ROWS):
            work.judge_chunk(start)
        todo_keys = sorted(set(work.missing) - cache.known(list(dict.fromkeys(work.missing))))
        if todo_keys:
            await collector.submit_lines(plan.lines(todo_keys))
        await collector.submit()
        return work

    work = client.run(run)
    return _frames(work, plan, collector)


def _frames(work: _Run, plan: _Plan, collector: BatchCollector) -> dict[str, Any]:
    rows = pd.concat([r.astype(object) for r in work.rows], ignore_index=True).reindex(columns=_ROW_COLUMNS).sort_values("i", kind="stable").reset_index(drop=True)
    todo, names = plan.todo, np.array([j.name for j in plan.judges], dtype=object)
    pair_ids = todo["pair_id"].astype(str).to_numpy(dtype=object)[rows["pair_row"].to_numpy(dtype=np.int64)]
    judge_names = names[rows["judge_row"].to_numpy(dtype=np.int64)]
    verdicts = pd.DataFrame({
        "pair_id": pair_ids, "judge": judge_names, "order": rows["ord"].to_numpy(dtype=object), "status": rows["status"].to_numpy(dtype=object),
        "raw_label": rows["raw_label"], "label": rows["label"], "probability": rows["probability"].astype("float64"),
        "retried": rows["retried"].astype("boolean").fillna(False).astype(bool),
        "problem": rows["problem"], "len_a": todo["response_a"].str.len().to_numpy()[rows["pair_row"].to_numpy(dtype=np.int64)],
        "len_b": todo["response_b"].str.len().to_numpy()[rows["pair_row"].to_numpy(dtype=np.int64)],
    })
    with duckdb.connect() as con:
        con.register("r", pa.table({"pair_id": pair_ids.astype(str), "judge": judge_names.astype(str), "i": rows["i"].to_numpy(), "fragment": rows["fragment"].astype(object)}))
        raw = con.execute("SELECT pair_id, judge, '{' || coalesce(string_agg(fragment, ', ' ORDER BY i), '') || '}' AS raw FROM r GROUP BY pair_id, judge").df()
    raws = pd.Series(raw["raw"].to_numpy(dtype=object), index=pd.MultiIndex.from_arrays([raw["pair_id"], raw["judge"]]), dtype=object)
    fast = rows[~rows["slow"].astype("boolean").fillna(False).astype(bool)]
    models = np.array([j.config.model for j in plan.judges], dtype=object)[fast["judge_row"].to_numpy(dtype=np.int64)]
    usage = pd.DataFrame({
        "call_key": fast["key"], "stage": "judge", "actor": judge_names[fast.index], "item_id": pair_ids[fast.index], "model": models,
        "prompt_tokens": fast["prompt_tokens"], "completion_tokens": fast["completion_tokens"], "cached": fast["cached"].astype("boolean").fillna(False).astype(bool),
        "batch": fast["batch"].astype("boolean").fillna(True).astype(bool), "status": fast["status"], "attempts": 0,
        "error": fast["problem"].where(fast["status"] == "failed"),
    })
    prices = work.client.prices
    cost = prices.costs(usage["model"].to_numpy(), pd.to_numeric(usage["prompt_tokens"]).fillna(0).to_numpy(), pd.to_numeric(usage["completion_tokens"]).fillna(0).to_numpy(), usage["batch"].to_numpy())
    usage["cost_usd"] = np.where(usage["status"].to_numpy() == "ok", cost, 0.0)
    usage["spent_usd"] = np.where(usage["cached"].to_numpy(), 0.0, usage["cost_usd"])
    usage = pd.concat([usage[list(USAGE)].astype(USAGE), usage_frame(work.calls, prices)], ignore_index=True) if work.calls else usage[list(USAGE)].astype(USAGE)
    return {"verdicts": verdicts, "raws": raws, "usage": usage, "batch_jobs": collector.open_jobs(), "collector": collector}
