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


def test_card_tells_this_batch_and_its_version_never_the_design():
    """The demo's card used to say an LLM judge labelled every pair in both orders: its verdicts were
    imported, in one order, and every pair went to people. With the batch's facts it says that."""
    from prefpipe.core.dataset_versions import DatasetChange, DatasetVersion, Publication
    from prefpipe_tests.reports.test_batch_story import demo_like

    version = DatasetVersion("bbbb", "b" * 64, "b1", "2026-01-02T00:00:00+00:00", "run-2", 3, ("g1", "g2"), ("jp1",),
                             previous="aaaa", change=DatasetChange("aaaa", added=1, removed=0, labels_changed=2, otherwise_changed=0))
    card = dataset_card(_trl(), facts=demo_like(), publication=Publication(version, True, None))
    assert "LLM judge labelled every pair" not in card and "both orders" not in card and "hidden gold" not in card
    assert "## Version\n\nVersion bbbb" in card and "since version aaaa: 1 pair(s) added, 0 removed, 2 with a changed label" in card
    made = card.split("## How it was made")[1].split("## Columns")[0]
    assert "- prefpipe asked no AI judge: 999 verdicts of gpt-3.5-turbo were imported" in made and "- Every pair went to people" in made
    assert "still waiting" not in made  # nothing waits in the demo
