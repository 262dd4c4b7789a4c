"""The per-call usage ledger that cost_report consumes.

One row per call a stage made (or took from the cache), priced from the price table:

| column | meaning |
|---|---|
| call_key | cache key of the call (sha256 of model, messages, sampling parameters, sample index) |
| stage | judge, judge_retry, generation, scorer, scorer_retry |
| actor | judge name, generation strategy, or scorer name |
| item_id | the pair_id (judge) or prompt_id (generation) the call served |
| model | model asked for |
| prompt_tokens, completion_tokens | as the server reported them; null for a failed or pending call |
| cached | answered from the cache: nothing was sent or paid for it in this run |
| batch | made through the Batch API, so priced at the batch rate |
| status | ok, failed, or pending (submitted to the Batch API, not answered yet) |
| attempts | HTTP requests sent for it in this run (0 when cached) |
| cost_usd | what the answer cost when it was bought (tokens x price table); NaN when the model has no price |
| spent_usd | what this run paid for it: cost_usd, or 0 when cached |
| error | why a failed call failed |

Sum `cost_usd` for what a batch's labels cost, `spent_usd` for what a run cost. Failed calls have
no token counts (a server does not report usage on an error) and cost nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
import pandas as pd

from prefpipe.core.schemas import LLM_CALLS
from prefpipe.llm.prices import PriceTable
from prefpipe.llm.request import Completion

USAGE: Final = LLM_CALLS
"""The ledger's columns: the warehouse's generation_calls / judge_calls schema, defined in core."""


def usage_frame(completions: Iterable[Completion], prices: PriceTable) -> pd.DataFrame:
    rows = [
        (
            c.key,
            c.request.stage if c.request else "",
            c.request.actor if c.request else "",
            c.request.item_id if c.request else "",
            c.model,
            c.prompt_tokens,
            c.completion_tokens,
            c.cached,
            c.batch,
            c.status,
            c.attempts,
            c.error,
        )
        for c in completions
    ]
    names = [n for n in USAGE if n not in ("cost_usd", "spent_usd")]
    df = pd.DataFrame.from_records(rows, columns=names)
    p = pd.to_numeric(df["prompt_tokens"], errors="coerce").fillna(0).to_numpy()
    c = pd.to_numeric(df["completion_tokens"], errors="coerce").fillna(0).to_numpy()
    cost = prices.costs(df["model"].to_numpy(), p, c, df["batch"].to_numpy(dtype=bool))
    cost = np.where(df["status"].to_numpy() == "ok", cost, 0.0)
    df["cost_usd"] = cost
    df["spent_usd"] = np.where(df["cached"].to_numpy(dtype=bool), 0.0, cost)
    out = df[list(USAGE)]
    return out.astype(USAGE)
