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
from prefpipe.exports.common import HUMAN_SOURCES, arrow_column, arrow_table, source_is

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


DIRECTION_CODES: tuple[str, ...] = ("=", "A", "B")
"""A verdict's direction as a small integer (its index here, -1 for none)."""
A, B, TIE = (DIRECTION_CODES.index(d) for d in ("A", "B", "="))
STATUS_CODES: tuple[str, ...] = ("unparsed", "failed", "inconsistent")


def _codes(values: pa.ChunkedArray, names: tuple[str, ...], of_name: tuple[int, ...]) -> pa.Array:
    """of_name[i] where a value is names[i], -1 for any other value or a missing one (int8)."""
    found = pc.index_in(values.cast(pa.string()), value_set=pa.array(names, pa.string()))
    found = found.combine_chunks() if isinstance(found, pa.ChunkedArray) else found
    return pc.fill_null(pa.array(of_name, pa.int8()).take(found), -1)


def label_codes(labels: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """(ordinal code 0..4, DIRECTION_CODES index) of each label, -1 for a missing or off-scale one."""
    scale = tuple(DIRECTION)
    return (_codes(labels, scale, tuple(range(len(scale)))),
            _codes(labels, scale, tuple(DIRECTION_CODES.index(DIRECTION[label]) for label in scale)))


GROUPS_SQL = f"""
SELECT a.judge, a.d_ai, coalesce(h.d_h, -1) AS d_h, a.d_ab, a.d_ba, coalesce(a.l_ai >= 0 AND a.l_ai = h.l_h, false) AS exact,
       CASE WHEN l.len_a > l.len_b THEN {A} WHEN l.len_b > l.len_a THEN {B} ELSE -1 END AS longer, a.status, count(*) AS n
FROM judge_card_ai a LEFT JOIN judge_card_human h ON h.pair_id = a.pair_id LEFT JOIN {{lengths}} l ON l.pair_id = a.pair_id
WHERE a.judge IS NOT NULL
GROUP BY ALL
"""
"""The verdicts joined to the final human label and the response lengths, counted per judge and
combination of directions (a few hundred rows for a million verdicts): the rates are sums over
them. Labels and statuses come as small integers made in Arrow (-1 for none): DuckDB no longer
compares a million labels' strings sixteen times over."""


def _hits(groups: pd.DataFrame) -> pd.DataFrame:
    """Per judge (sorted), how many verdicts qualify for each rate and how many of them hit (the
    first slot is A when shown in the pair's order, B when shown swapped: label_ba is mapped back)."""
    d_ai, d_h, d_ab, d_ba, longer = (groups[c].to_numpy() for c in ("d_ai", "d_h", "d_ab", "d_ba", "longer"))
    status, exact = groups["status"].to_numpy(), groups["exact"].to_numpy(dtype=bool)
    compared = (d_ai >= 0) & (d_h >= 0)
    no_ties = compared & (d_ai != TIE) & (d_h != TIE)
    both = (d_ab >= 0) & (d_ba >= 0)
    decisive_ai, decisive_h = np.isin(d_ai, (A, B)), np.isin(d_h, (A, B))
    masks = {
        "n_labels": np.ones(len(groups), dtype=bool), "n_compared": compared, "agree": compared & (d_ai == d_h),
        "n_no_ties": no_ties, "agree_no_ties": no_ties & (d_ai == d_h), "exact": compared & exact,
        "n_both_orders": both, "flips": both & (d_ab != d_ba),
        "n_longer": decisive_ai & (longer >= 0), "longer": decisive_ai & (d_ai == longer),
        "n_human_longer": decisive_h & (longer >= 0) & (d_ai >= 0), "human_longer": decisive_h & (d_h == longer) & (d_ai >= 0),
        "unparsed": np.isin(status, (STATUS_CODES.index("unparsed"), STATUS_CODES.index("failed"))),
        "inconsistent": status == STATUS_CODES.index("inconsistent"),
    }
    n = groups["n"].to_numpy(dtype=np.int64)
    counts = pd.DataFrame({name: np.where(mask, n, 0) for name, mask in masks.items()})
    counts["n_first"] = np.where(np.isin(d_ab, (A, B)), n, 0) + np.where(np.isin(d_ba, (A, B)), n, 0)
    counts["first"] = np.where(d_ab == A, n, 0) + np.where(d_ba == B, n, 0)
    return counts.groupby(groups["judge"].astype("object").to_numpy(), sort=True).sum().rename_axis("judge").reset_index()


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
"""Card column -> (hits, out of) in _hits."""

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


def _verdicts(ai_labels: pd.DataFrame, final_labels: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """The verdicts and the final human labels as GROUPS_SQL reads them: ids, and labels and
    statuses as small integers."""
    ai = arrow_table(ai_labels, dict.fromkeys(("pair_id", "judge", "label", "label_ab", "label_ba", "status"), pa.string()))
    l_ai, d_ai = label_codes(ai["label"])
    ai = pa.table({"pair_id": ai["pair_id"], "judge": ai["judge"], "l_ai": l_ai, "d_ai": d_ai, "d_ab": label_codes(ai["label_ab"])[1],
                   "d_ba": label_codes(ai["label_ba"])[1], "status": _codes(ai["status"], STATUS_CODES, tuple(range(len(STATUS_CODES))))})
    final = arrow_table(final_labels, dict.fromkeys(("pair_id", "label", "source"), pa.string()))
    human = final.select(["pair_id", "label"]).filter(pc.and_(source_is(final["source"], HUMAN_SOURCES), pc.is_valid(final["label"])))
    l_h, d_h = label_codes(human["label"])
    return ai, pa.table({"pair_id": human["pair_id"], "l_h": l_h, "d_h": d_h})


def _groups(con: duckdb.DuckDBPyConnection, ai: pa.Table, human: pa.Table, lengths: str, params: list | None = None) -> pd.DataFrame:
    """GROUPS_SQL on `con`, the verdicts and human labels registered for the query's time."""
    con.register("judge_card_ai", ai)
    con.register("judge_card_human", human)
    try:
        return con.execute(GROUPS_SQL.format(lengths=lengths), params or []).df()
    finally:
        con.unregister("judge_card_ai")
        con.unregister("judge_card_human")


def _card(ai_labels: pd.DataFrame, ai: pa.Table, groups: pd.DataFrame) -> pd.DataFrame:
    counts = _hits(groups)
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


def _empty_card() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in JUDGE_CARD.items()})


def judge_report_card(
    ai_labels: pd.DataFrame,
    final_labels: pd.DataFrame,
    response_pairs: pd.DataFrame,
) -> pd.DataFrame:
    """One row per judge (columns JUDGE_CARD). `response_pairs`: the pairs, or only their lengths
    (pair_id, len_a, len_b: `warehouse_response_lengths`)."""
    if ai_labels.empty:
        return _empty_card()
    ai, human = _verdicts(ai_labels, final_labels)
    with duckdb.connect() as con:
        con.register("judge_card_lengths", response_lengths(response_pairs))
        return _card(ai_labels, ai, _groups(con, ai, human, "judge_card_lengths"))


def warehouse_judge_report_card(database: str | Path | None, batch_id: str, ai_labels: pd.DataFrame, final_labels: pd.DataFrame) -> pd.DataFrame:
    """judge_report_card of a batch whose pairs are in the warehouse: the responses are measured
    and joined to the verdicts there, so a million pairs' ids never leave DuckDB (reading the
    lengths out cost four times measuring them)."""
    from prefpipe.core.settings import WAREHOUSE_SCHEMA
    from prefpipe.core.warehouse import present_tables, quote, read_only

    if ai_labels.empty:
        return _empty_card()
    ai, human = _verdicts(ai_labels, final_labels)
    with read_only(database) as con:
        if con is not None and "response_pairs" in present_tables(con):
            lengths = "(" + LENGTHS_SQL.format(table=f"{WAREHOUSE_SCHEMA}.{quote('response_pairs')}") + ")"
            return _card(ai_labels, ai, _groups(con, ai, human, lengths, [batch_id]))
    return judge_report_card(ai_labels, final_labels, warehouse_response_lengths(database, batch_id))
