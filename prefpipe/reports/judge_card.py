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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefpipe.core.labels import DIRECTION

HUMAN_SOURCES = ("human", "expert")

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


def _share(hit: pd.Series, valid: pd.Series) -> pd.Series:
    """1.0/0.0 where valid, NaN elsewhere: its group mean is the share among the valid rows."""
    return hit.astype("float64").where(valid.astype(bool))


def judge_report_card(
    ai_labels: pd.DataFrame,
    final_labels: pd.DataFrame,
    response_pairs: pd.DataFrame,
) -> pd.DataFrame:
    """One row per judge (columns JUDGE_CARD)."""
    if ai_labels.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in JUDGE_CARD.items()})
    source = final_labels["source"].astype("object").fillna("").str.split(":").str[0]
    human = final_labels.loc[source.isin(HUMAN_SOURCES) & final_labels["label"].notna(), ["pair_id", "label"]]
    lengths = response_pairs[["pair_id"]].assign(
        len_a=response_pairs["response_a"].fillna("").str.len(),
        len_b=response_pairs["response_b"].fillna("").str.len(),
    )
    df = ai_labels.merge(human.rename(columns={"label": "human"}), on="pair_id", how="left", validate="many_to_one")
    df = df.merge(lengths, on="pair_id", how="left", validate="many_to_one")

    d_ai = df["label"].map(DIRECTION)
    d_h = df["human"].map(DIRECTION)
    d_ab = df["label_ab"].map(DIRECTION)
    d_ba = df["label_ba"].map(DIRECTION)
    compared = d_ai.notna() & d_h.notna()
    no_ties = compared & d_ai.ne("=") & d_h.ne("=")
    both_orders = d_ab.notna() & d_ba.notna()
    longer = np.where(df["len_a"] > df["len_b"], "A", np.where(df["len_b"] > df["len_a"], "B", None))
    has_longer = pd.Series(longer, index=df.index).notna()
    ab_decisive = d_ab.isin(["A", "B"])
    ba_decisive = d_ba.isin(["A", "B"])
    status = df["status"].astype("object")
    cost = pd.to_numeric(df["cost_usd"], errors="coerce")

    work = pd.DataFrame(
        {
            "judge": df["judge"].astype("object"),
            "compared": compared.astype(int),
            "agreement_with_ties": _share(d_ai.eq(d_h), compared),
            "agreement_without_ties": _share(d_ai.eq(d_h), no_ties),
            "exact_agreement": _share(df["label"].eq(df["human"]), compared),
            "flip_rate": _share(d_ab.ne(d_ba), both_orders),
            # first slot: A when shown in the pair's order, B when shown swapped (label_ba is mapped back)
            "first_ab": _share(d_ab.eq("A"), ab_decisive),
            "first_ba": _share(d_ba.eq("B"), ba_decisive),
            "longer_preference": _share(d_ai.eq(longer), d_ai.isin(["A", "B"]) & has_longer),
            "human_longer_preference": _share(d_h.eq(longer), d_h.isin(["A", "B"]) & has_longer & d_ai.notna()),
            "unparsed_rate": status.isin(["unparsed", "failed"]).astype("float64"),
            "inconsistent_rate": status.eq("inconsistent").astype("float64"),
            "cost": cost,
            "cost_known": cost.notna().astype(int),
        }
    )
    g = work.groupby("judge", sort=True)
    first_hits = g["first_ab"].sum(min_count=1).fillna(0) + g["first_ba"].sum(min_count=1).fillna(0)
    first_n = g["first_ab"].count() + g["first_ba"].count()
    known = g["cost_known"].sum()
    card = pd.DataFrame(
        {
            "judge": g.size().index,
            "n_labels": g.size().to_numpy(),
            "n_compared": g["compared"].sum().to_numpy(),
            "agreement_with_ties": g["agreement_with_ties"].mean().to_numpy(),
            "agreement_without_ties": g["agreement_without_ties"].mean().to_numpy(),
            "exact_agreement": g["exact_agreement"].mean().to_numpy(),
            "flip_rate": g["flip_rate"].mean().to_numpy(),
            "first_slot_preference": (first_hits / first_n.replace(0, np.nan)).to_numpy(),
            "longer_preference": g["longer_preference"].mean().to_numpy(),
            "human_longer_preference": g["human_longer_preference"].mean().to_numpy(),
            "unparsed_rate": g["unparsed_rate"].mean().to_numpy(),
            "inconsistent_rate": g["inconsistent_rate"].mean().to_numpy(),
            "cost_per_1000_labels": (1000 * g["cost"].sum(min_count=1) / known.replace(0, np.nan)).to_numpy(),
        }
    )
    return card.astype(JUDGE_CARD).reset_index(drop=True)
