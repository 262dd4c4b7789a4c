from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from prefpipe.reports import markdown


def test_pipes_and_newlines_in_cells_do_not_break_the_table():
    df = pd.DataFrame({"scope": ["ann-1|ann-2", "line\nbreak"], "value": [0.81234, np.nan]})
    text = markdown.table_md(df)
    lines = text.splitlines()
    assert len(lines) == 4 and all(line.count("|") - line.count("\\|") == 3 for line in lines)
    assert "ann-1\\|ann-2" in text and "0.812" in text


def test_long_tables_are_cut_with_a_note():
    text = markdown.table_md(pd.DataFrame({"x": range(60)}), max_rows=10)
    assert "50 more row(s) not shown" in text and text.count("\n|") == 11


def test_judge_card_rates_read_as_percentages():
    card = pd.DataFrame({"judge": ["j"], "n_labels": [10], "flip_rate": [0.125], "first_slot_preference": [np.nan],
                         "cost_per_1000_labels": [1.5]})
    text = markdown.judge_card_md(card)
    assert "12.5%" in text and "1.5" in text and "nan" not in text.lower()


def test_judge_card_agreement_columns_read_as_percentages_too():
    card = pd.DataFrame({"judge": ["j"], "agreement_with_ties": [0.6667], "agreement_without_ties": [0.5],
                         "exact_agreement": [0.25]})
    text = markdown.judge_card_md(card)
    assert "66.7%" in text and "50.0%" in text and "25.0%" in text and "0.6667" not in text


def test_image_markdown_embeds_the_png():
    md = markdown.image_md(b"\x89PNG fake", "alt [x]")
    assert md.startswith("![alt (x)](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1][:-1]) == b"\x89PNG fake"


def test_empty_inputs_say_so():
    assert markdown.table_md(pd.DataFrame()) == "_No rows._"
    assert "up to date" in markdown.staleness_md(pd.DataFrame())
