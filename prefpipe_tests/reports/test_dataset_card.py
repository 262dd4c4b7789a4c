from __future__ import annotations

import datetime as dt

import pandas as pd

from prefpipe.reports.dataset_card import dataset_card


def _trl() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt": ["a", "b", "c"],
            "chosen": ["x", "y", "z"],
            "rejected": ["u", "v", "w"],
            "margin": [0.5, 2.0, None],
            "pair_id": ["1", "2", "3"],
            "label": ["A>B", "B>>A", "A>B"],
            "label_source": ["human:majority", "human:majority", "ai:ai"],
            "batch_id": ["b1", "b1", "b2"],
            "guideline_version": ["g1", "g1", "g2"],
            "judge_prompt_version": [None, None, "jp1"],
        }
    )


def test_card_says_how_it_was_made_and_how_well_people_agreed():
    agreement = pd.DataFrame(
        {
            "metric": ["krippendorff_alpha", "cohen_kappa"],
            "scope": ["batch", "ann-1|ann-2"],
            "value": [0.712, 0.65],
            "ci_low": [0.65, 0.5],
            "ci_high": [0.77, 0.8],
            "n_items": [120, 60],
            "band": ["substantial", "substantial"],
            "interpretation": ["usable with majority voting", "usable with majority voting"],
        }
    )
    card = dataset_card(_trl(), agreement_report=agreement, generated_at=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc))
    header = card.split("---")[1]
    assert "path: train.parquet" in header and "license" not in header  # never a guessed licence
    assert "3 preference pairs from batch(es) b1, b2" in card
    assert "| human:majority |      2 |   66.7% |" in card
    assert "krippendorff_alpha" in card and "0.712" in card
    assert "ann-1|ann-2" not in card and "1 annotator-pair figure" in card
    assert "1 row(s) have no margin" in card


def test_card_without_agreement_or_rows_says_so():
    card = dataset_card(_trl().iloc[0:0], license="apache-2.0")
    assert "license: apache-2.0" in card
    assert "No agreement figures" in card and "_No rows._" in card


def test_an_arrow_table_gives_the_same_card():
    """published_dataset passes the export as trl_table's Arrow table (the text never in pandas)."""
    from prefpipe.exports.trl import to_trl, trl_table

    rows = _trl().drop(columns=["judge_prompt_version"]).assign(label_source=["human:majority", None, "ai:ai"])
    when = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    assert dataset_card(trl_table(rows), generated_at=when) == dataset_card(to_trl(rows), generated_at=when)
    assert "| (unknown)      |      1 |   33.3% |" in dataset_card(trl_table(rows), generated_at=when)
