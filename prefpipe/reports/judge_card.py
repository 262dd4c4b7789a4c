"""The judge report card: how far to trust each AI judge on this batch.

Per judge, against the batch's final human (or expert) labels:
- agreement_with_ties: the direction (A, tie, B) matches, over pairs both labelled;
- agreement_without_ties: the direction matches, over pairs where neither label is a tie (what a
  DPO/reward-model trainer uses, since ties are dropped there);
- exact_agreement: the five-point label matches;
- flip_rate: of pairs judged in both orders, the share whose direction changed with the order;
- first_slot_preference: of decisive verdicts, the share that picked whichever response was shown
  first (0.5 = no position bias; both orders count when both were judged);
- longer_preference: of decisive verdicts on pairs of unequal length, the share for the longer
  response (compare with human_longer_preference, the people's share on the same pairs);
- unparsed_rate: verdicts that could not be read or whose call failed; inconsistent_rate: verdicts
  whose two orders disagreed so no label was kept;
- cost_per_1000_labels: USD per 1,000 verdicts with a known cost.
Rates are NaN when nothing qualifies (e.g. flip_rate for a judge that saw one order only).

A batch has a verdict a pair, a million of them: the verdicts are joined to the final labels and the
response lengths and counted per judge in one DuckDB query; only the costs are summed in pandas,
in the verdicts' order, so the card's dollars are the same to the last bit whatever the size.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core.labels import DIRECTION
from prefpipe.exports.common import HUMAN_SOURCES, arrow_column, arrow_table, source_is, sql_case

JUDGE_CARD: dict[str, str] = {
    "judge": "string",
    "n_labels": "Int64",
    "n_compared": "Int64",
    "agreement_with_ties": "float64",
    "agreement_without_ties": "float64",
    "exact_agreement": "float64",
    "flip_rate": "float64",
    "first_slot_preference": "float64",
    "longer_preference": "float64",
    "human_longer_preference": "float64",
    "unparsed_rate": "float64",
    "inconsistent_rate": "float64",
    "cost_per_1000_labels": "float64",
}


def _direction(column: str) -> str:
    return sql_case(column, DIRECTION)


COUNTS_SQL = f"""
WITH v AS (
    SELECT a.judge, {_direction('a.label')} AS d_ai, {_direction('h.label')} AS d_h,
           {_direction('a.label_ab')} AS d_ab, {_direction('a.label_ba')} AS d_ba, a.label = h.label AS exact,
           CASE WHEN l.len_a > l.len_b THEN 'A' WHEN l.len_b > l.len_a THEN 'B' END AS longer, a.status
    FROM ai a LEFT JOIN human h ON h.pair_id = a.pair_id LEFT JOIN lengths l ON l.pair_id = a.pair_id
    WHERE a.judge IS NOT NULL
), w AS (
    SELECT *, d_ai IS NOT NULL AND d_h IS NOT NULL AS compared FROM v
)
SELECT judge, count(*) AS n_labels,
       count(*) FILTER (compared) AS n_compared,
       count(*) FILTER (compared AND d_ai = d_h) AS agree,
       count(*) FILTER (compared AND d_ai <> '=' AND d_h <> '=') AS n_no_ties,
       count(*) FILTER (compared AND d_ai <> '=' AND d_h <> '=' AND d_ai = d_h) AS agree_no_ties,
       count(*) FILTER (compared AND exact) AS exact,
       count(*) FILTER (d_ab IS NOT NULL AND d_ba IS NOT NULL) AS n_both_orders,
       count(*) FILTER (d_ab IS NOT NULL AND d_ba IS NOT NULL AND d_ab <> d_ba) AS flips,
       count(*) FILTER (d_ab IN ('A', 'B')) + count(*) FILTER (d_ba IN ('A', 'B')) AS n_first,
       count(*) FILTER (d_ab = 'A') + count(*) FILTER (d_ba = 'B') AS first,
       count(*) FILTER (d_ai IN ('A', 'B') AND longer IS NOT NULL) AS n_longer,
       count(*) FILTER (d_ai IN ('A', 'B') AND d_ai = longer) AS longer,
       count(*) FILTER (d_h IN ('A', 'B') AND longer IS NOT NULL AND d_ai IS NOT NULL) AS n_human_longer,
       count(*) FILTER (d_h IN ('A', 'B') AND d_h = longer AND d_ai IS NOT NULL) AS human_longer,
       count(*) FILTER (status IN ('unparsed', 'failed')) AS unparsed,
       count(*) FILTER (status = 'inconsistent') AS inconsistent
FROM w GROUP BY judge ORDER BY judge
"""
"""Per judge, how many verdicts qualify for each rate and how many of them hit (the first slot is
A when shown in the pair's order, B when shown swapped: label_ba is mapped back)."""

RATES: dict[str, tuple[str, str]] = {
    "agreement_with_ties": ("agree", "n_compared"),
    "agreement_without_ties": ("agree_no_ties", "n_no_ties"),
    "exact_agreement": ("exact", "n_compared"),
    "flip_rate": ("flips", "n_both_orders"),
    "first_slot_preference": ("first", "n_first"),
    "longer_preference": ("longer", "n_longer"),
    "human_longer_preference": ("human_longer", "n_human_longer"),
    "unparsed_rate": ("unparsed", "n_labels"),
    "inconsistent_rate": ("inconsistent", "n_labels"),
}
"""Card column -> (hits, out of) in COUNTS_SQL."""

LENGTHS_SQL = "SELECT pair_id, coalesce(length(response_a), 0) AS len_a, coalesce(length(response_b), 0) AS len_b FROM {table} WHERE batch_id = ?"
"""Response lengths in characters (str.len()), a missing response 0."""


def response_lengths(response_pairs: pd.DataFrame) -> pa.Table:
    """pair_id, len_a, len_b from the pairs' text, or as they are when the frame already has them
    (what `warehouse_response_lengths` reads)."""
    if {"len_a", "len_b"} <= set(response_pairs.columns):
        return arrow_table(response_pairs, {"pair_id": pa.string(), "len_a": pa.int64(), "len_b": pa.int64()})
    lengths = {c: pc.utf8_length(pc.fill_null(arrow_column(response_pairs[f"response_{c[-1]}"], pa.string()), "")) for c in ("len_a", "len_b")}
    return pa.table({"pair_id": arrow_column(response_pairs["pair_id"], pa.string()), **{c: v.cast(pa.int64()) for c, v in lengths.items()}})


def warehouse_response_lengths(database: str | Path | None, batch_id: str) -> pd.DataFrame:
    """A batch's response lengths (pair_id, len_a, len_b) counted in the warehouse, so the card
    never loads a million responses' text to measure it."""
    from prefpipe.core.settings import WAREHOUSE_SCHEMA
    from prefpipe.core.warehouse import fetch_frame, present_tables, quote, read_only

    with read_only(database) as con:
        if con is None or "response_pairs" not in present_tables(con):
            return pd.DataFrame({"pair_id": pd.Series(dtype="string"), "len_a": pd.Series(dtype="int64"), "len_b": pd.Series(dtype="int64")})
        return fetch_frame(con, LENGTHS_SQL.format(table=f"{WAREHOUSE_SCHEMA}.{quote('response_pairs')}"), [batch_id])


def judge_report_card(
    ai_labels: pd.DataFrame,
    final_labels: pd.DataFrame,
    response_pairs: pd.DataFrame,
) -> pd.DataFrame:
    """One row per judge (columns JUDGE_CARD). `response_pairs`: the pairs, or only their lengths
    (pair_id, len_a, len_b: `warehouse_response_lengths`)."""
    if ai_labels.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in JUDGE_CARD.items()})
    ai = arrow_table(ai_labels, dict.fromkeys(("pair_id", "judge", "label", "label_ab", "label_ba", "status"), pa.string()))
    final = arrow_table(final_labels, dict.fromkeys(("pair_id", "label", "source"), pa.string()))
    human = final.select(["pair_id", "label"]).filter(pc.and_(source_is(final["source"], HUMAN_SOURCES), pc.is_valid(final["label"])))
    with duckdb.connect() as con:
        for name, table in (("ai", ai), ("human", human), ("lengths", response_lengths(response_pairs))):
            con.register(name, table)
        counts = con.execute(COUNTS_SQL).df()
    if int(counts["n_labels"].sum()) != ai.num_rows - ai["judge"].null_count:  # a verdict joined twice: a pair's final label or pair repeated
        raise ValueError("judge report card: a pair_id is repeated in the final labels or the pairs (one row a pair expected)")
    card = pd.DataFrame({"judge": counts["judge"], "n_labels": counts["n_labels"], "n_compared": counts["n_compared"]})
    for column, (hits, of) in RATES.items():
        card[column] = counts[hits].to_numpy(dtype="float64") / counts[of].replace(0, np.nan).to_numpy(dtype="float64")
    cost = pd.to_numeric(ai_labels["cost_usd"], errors="coerce")  # summed in pandas, in order, as before
    by_judge = cost.groupby(ai_labels["judge"], sort=True)
    per_1000 = 1000 * by_judge.sum(min_count=1) / by_judge.count().replace(0, np.nan)
    card["cost_per_1000_labels"] = per_1000.reindex(card["judge"].astype("object")).to_numpy()
    return card.astype(JUDGE_CARD).reset_index(drop=True)
