from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefpipe.reports.judge_card import JUDGE_CARD, judge_report_card
from prefpipe_tests.reports.pandalm import pandalm_frames


def _pairs(n: int, longer_a: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": [f"p{i}" for i in range(n)],
        "response_a": ["a long answer" if la else "a" for la in longer_a],
        "response_b": ["b" if la else "b long answer" for la in longer_a],
    })


def test_card_figures_on_a_batch_worked_by_hand():
    pairs = _pairs(5, [True, True, False, False, True])
    final = pd.DataFrame({"pair_id": ["p0", "p1", "p2", "p3", "p4"], "label": ["A>B", "A=B", "B>A", "A>B", "B>>A"],
                          "source": ["human", "human", "expert", "ai", "human"]})
    ai = pd.DataFrame({
        "pair_id": ["p0", "p1", "p2", "p3", "p4", "p0"],
        "judge": ["j1"] * 5 + ["j2"],
        # j1: p0 agrees, p1 tie vs tie, p2 disagrees (A vs B), p3 has an AI final label (not compared), p4 unparsed
        "label": ["A>>B", "A=B", "A>B", "A>B", None, "B>A"],
        "status": ["ok", "ok", "ok", "ok", "unparsed", "ok"],
        "label_ab": ["A>>B", "A>B", "A>B", "A>B", None, "B>A"],
        "label_ba": ["A>B", "B>A", "A>B", None, None, None],
        "cost_usd": [0.002, 0.002, 0.002, 0.002, 0.002, np.nan],
    })
    card = judge_report_card(ai, final, pairs).set_index("judge")
    assert list(card.reset_index().columns) == list(JUDGE_CARD)
    j1 = card.loc["j1"]
    assert j1["n_labels"] == 5 and j1["n_compared"] == 3
    assert j1["agreement_with_ties"] == pytest.approx(2 / 3)  # p0 A=A, p1 tie=tie, p2 A!=B
    assert j1["agreement_without_ties"] == pytest.approx(1 / 2)  # p0 and p2
    assert j1["exact_agreement"] == pytest.approx(1 / 3)  # only the tie matches on all five points
    assert j1["flip_rate"] == pytest.approx(1 / 3)  # p1 flips (A then B); p0, p2 hold
    # first slot: AB order A,A,A,A (4 of 4 first); BA order p0 A (second), p1 B (first), p2 A (second)
    assert j1["first_slot_preference"] == pytest.approx(5 / 7)
    assert j1["longer_preference"] == pytest.approx(1 / 3)  # decisive p0 (A, the longer), p2 and p3 (A, the shorter)
    assert j1["unparsed_rate"] == pytest.approx(1 / 5)
    assert j1["cost_per_1000_labels"] == pytest.approx(2.0)
    j2 = card.loc["j2"]
    assert pd.isna(j2["flip_rate"]) and pd.isna(j2["cost_per_1000_labels"])
    assert j2["agreement_with_ties"] == 0.0


def test_pandalm_judge_matches_the_published_accuracy(shared_data):
    """gpt-3.5-turbo against the annotators' majority: 71.56% of parsed verdicts agree (PandaLM
    PROVENANCE.md, recomputed; 3-class with ties), 25 of 999 verdicts unparseable."""
    frames = pandalm_frames(shared_data)
    card = judge_report_card(frames["ai_labels"], frames["final_labels"], frames["response_pairs"]).iloc[0]
    assert card["n_compared"] == 974
    assert card["agreement_with_ties"] == pytest.approx(0.7156, abs=5e-5)
    assert card["unparsed_rate"] == pytest.approx(25 / 999)
    assert pd.isna(card["flip_rate"])  # one order only in the published verdicts
    assert 0.3 < card["first_slot_preference"] < 0.7 and 0.5 < card["human_longer_preference"] < 0.8


def test_no_ai_labels_gives_an_empty_card():
    empty = pd.DataFrame(columns=["pair_id", "judge", "label", "status", "label_ab", "label_ba", "cost_usd"])
    card = judge_report_card(empty, pd.DataFrame(columns=["pair_id", "label", "source"]), _pairs(0, []))
    assert card.empty and list(card.columns) == list(JUDGE_CARD)


def test_lengths_alone_and_arrow_backed_text_give_the_same_card(shared_data):
    """What published_dataset passes: the response lengths counted in the warehouse, frames whose
    text is in Arrow (the warehouse loader's), instead of the pairs' text as Python objects."""
    from prefpipe.reports.judge_card import response_lengths

    f = pandalm_frames(shared_data)
    card = judge_report_card(f["ai_labels"], f["final_labels"], f["response_pairs"])
    lengths = response_lengths(f["response_pairs"]).to_pandas()
    assert lengths.columns.tolist() == ["pair_id", "len_a", "len_b"]
    assert lengths["len_a"].tolist() == f["response_pairs"]["response_a"].fillna("").str.len().tolist()
    pd.testing.assert_frame_equal(judge_report_card(f["ai_labels"], f["final_labels"], lengths), card, check_exact=True)
    arrow = {k: v.astype({c: pd.StringDtype("pyarrow") for c in v.columns if str(v[c].dtype) in ("string", "object")}) for k, v in f.items()}
    pd.testing.assert_frame_equal(judge_report_card(arrow["ai_labels"], arrow["final_labels"], arrow["response_pairs"]), card, check_exact=True)


def test_lengths_are_read_from_the_warehouse(tmp_path):
    import duckdb

    from prefpipe.reports.judge_card import warehouse_response_lengths

    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE response_pairs AS SELECT * FROM (VALUES ('b1', 'p1', 'résumé', NULL), ('b2', 'p2', 'x', 'yy')) t(batch_id, pair_id, response_a, response_b)")
    got = warehouse_response_lengths(db, "b1")
    assert got["pair_id"].tolist() == ["p1"] and got["len_a"].tolist() == [6] and got["len_b"].tolist() == [0]
    assert warehouse_response_lengths(tmp_path / "none.duckdb", "b1").empty


def test_the_card_joined_in_the_warehouse_is_the_card(tmp_path, shared_data):
    """published_dataset's card: the responses measured and joined to the verdicts in DuckDB."""
    import duckdb

    from prefpipe.reports.judge_card import warehouse_judge_report_card

    f = pandalm_frames(shared_data)
    db = tmp_path / "w.duckdb"
    pairs = f["response_pairs"].assign(batch_id="b1")[["batch_id", "pair_id", "response_a", "response_b"]]
    with duckdb.connect(str(db)) as con:
        con.register("pairs", pd.concat([pairs, pairs.assign(batch_id="b2", response_a="")]))
        con.execute("CREATE TABLE response_pairs AS SELECT * FROM pairs")
    want = judge_report_card(f["ai_labels"], f["final_labels"], f["response_pairs"])
    pd.testing.assert_frame_equal(warehouse_judge_report_card(db, "b1", f["ai_labels"], f["final_labels"]), want, check_exact=True)
    nowhere = warehouse_judge_report_card(tmp_path / "none.duckdb", "b1", f["ai_labels"], f["final_labels"])
    assert nowhere["n_labels"].tolist() == want["n_labels"].tolist() and nowhere["longer_preference"].isna().all()


def test_a_repeated_pair_is_refused():
    pairs = _pairs(2, [True, False])
    final = pd.DataFrame({"pair_id": ["p0", "p0"], "label": ["A>B", "B>A"], "source": ["human", "human"]})
    ai = pd.DataFrame({"pair_id": ["p0"], "judge": ["j"], "label": ["A>B"], "status": ["ok"], "label_ab": ["A>B"], "label_ba": [None], "cost_usd": [0.1]})
    with pytest.raises(ValueError, match="repeated in the final labels or the pairs"):
        judge_report_card(ai, final, pairs)
    with pytest.raises(ValueError, match="repeated in the final labels or the pairs"):
        judge_report_card(ai, final.head(1), pd.concat([pairs, pairs.head(1)]))


def _reference_card(ai: pd.DataFrame, final: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The card's rates counted row by row in Python, as the definitions in the module say."""
    from prefpipe.core.labels import DIRECTION

    d = lambda label: DIRECTION.get(label) if isinstance(label, str) else None  # noqa: E731
    human = {p: lab for p, lab, s in zip(final["pair_id"], final["label"], final["source"])
             if isinstance(lab, str) and isinstance(s, str) and s.split(":")[0] in ("human", "expert")}
    length = {p: (len(a or ""), len(b or "")) for p, a, b in zip(pairs["pair_id"], pairs["response_a"], pairs["response_b"])}
    out = {}
    for row in ai.to_dict("records"):
        if not isinstance(row["judge"], str):
            continue
        c = out.setdefault(row["judge"], dict.fromkeys(("n", "cmp", "agree", "nt", "agree_nt", "exact", "both", "flips", "nf", "first", "nl", "longer", "nhl", "hl", "unparsed", "inconsistent"), 0))
        d_ai, h = d(row["label"]), human.get(row["pair_id"])
        d_h, d_ab, d_ba = d(h), d(row["label_ab"]), d(row["label_ba"])
        la, lb = length.get(row["pair_id"], (None, None))
        longer = None if la is None or la == lb else ("A" if la > lb else "B")
        c["n"] += 1
        if d_ai and d_h:
            c["cmp"] += 1; c["agree"] += d_ai == d_h; c["exact"] += row["label"] == h  # noqa: E702
            if "=" not in (d_ai, d_h):
                c["nt"] += 1; c["agree_nt"] += d_ai == d_h  # noqa: E702
        if d_ab and d_ba:
            c["both"] += 1; c["flips"] += d_ab != d_ba  # noqa: E702
        c["nf"] += (d_ab in ("A", "B")) + (d_ba in ("A", "B")); c["first"] += (d_ab == "A") + (d_ba == "B")  # noqa: E702
        if d_ai in ("A", "B") and longer:
            c["nl"] += 1; c["longer"] += d_ai == longer  # noqa: E702
        if d_h in ("A", "B") and longer and d_ai:
            c["nhl"] += 1; c["hl"] += d_h == longer  # noqa: E702
        c["unparsed"] += row["status"] in ("unparsed", "failed"); c["inconsistent"] += row["status"] == "inconsistent"  # noqa: E702
    rate = lambda hits, of: hits / of if of else np.nan  # noqa: E731
    return pd.DataFrame([{"judge": j, "n_labels": c["n"], "n_compared": c["cmp"], "agreement_with_ties": rate(c["agree"], c["cmp"]),
                          "agreement_without_ties": rate(c["agree_nt"], c["nt"]), "exact_agreement": rate(c["exact"], c["cmp"]),
                          "flip_rate": rate(c["flips"], c["both"]), "first_slot_preference": rate(c["first"], c["nf"]),
                          "longer_preference": rate(c["longer"], c["nl"]), "human_longer_preference": rate(c["hl"], c["nhl"]),
                          "unparsed_rate": rate(c["unparsed"], c["n"]), "inconsistent_rate": rate(c["inconsistent"], c["n"])}
                         for j, c in sorted(out.items())])


def test_counts_made_on_label_codes_are_the_definitions_row_by_row():
    rng = np.random.default_rng(5)
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A", None, "off-scale"]
    n = 400
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "response_a": rng.choice(["x", "yy", "", None], n), "response_b": rng.choice(["x", "yy", "zzz"], n)})
    ai = pd.DataFrame({"pair_id": pairs["pair_id"], "judge": rng.choice(["j1", "j2", "é", None], n), "label": rng.choice(labels, n),
                       "label_ab": rng.choice(labels, n), "label_ba": rng.choice(labels, n),
                       "status": rng.choice(["ok", "unparsed", "failed", "inconsistent", None], n), "cost_usd": np.nan})
    final = pd.DataFrame({"pair_id": pairs["pair_id"], "label": rng.choice(labels[:6], n), "source": rng.choice(["human:majority", "expert", "ai", None], n)})
    card = judge_report_card(ai, final, pairs)
    want = _reference_card(ai, final, pairs)
    pd.testing.assert_frame_equal(card.drop(columns="cost_per_1000_labels"), want.astype({c: t for c, t in JUDGE_CARD.items() if c in want}), check_exact=True)
