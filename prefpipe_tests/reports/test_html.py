from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import settings
from prefpipe.reports.html import render_batch_report, report_path, write_batch_report
from prefpipe.core.stale_view import CurrentVersions, stale_view
from prefpipe_tests.reports.pandalm import pandalm_frames

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = '<img src="http://127.0.0.1:9/leak.png">'


@pytest.fixture(scope="module")
def report_tables(shared_data) -> dict[str, pd.DataFrame]:
    """The demo batch's real pairs, labels and verdicts, plus the report tables other stages make;
    one annotator id is markup that would load an image if it were not escaped, and a tenth of
    the AI labels were made under an older guideline."""
    tables = dict(pandalm_frames(shared_data))
    ai = tables["ai_labels"].copy()
    ai["cost_usd"] = 0.0015
    ai["judge_prompt_version"] = "judge_v1@current"  # as if prefpipe's own judge had made them
    ai.loc[ai.index[:100], "guideline_version"] = "old-guideline"
    tables["ai_labels"] = ai
    tables["annotator_reliability"] = pd.DataFrame({
        "annotator_id": ["annotator1", "annotator2", "annotator3", HOSTILE], "n_labels": [999, 999, 999, 20],
        "gold_answers": [50, 50, 50, 6], "gold_accuracy": [0.92, 0.88, 0.9, 0.33],
        "majority_agreement": [0.95, 0.93, 0.94, 0.4], "mean_seconds": [30.0, 25.0, 28.0, 3.0],
        "speed_penalty": [0.0, 0.0, 0.0, 0.4], "composite": [0.93, 0.9, 0.91, 0.35], "ds_accuracy": [0.94, 0.9, 0.92, 0.3],
        "gold_flagged": [False, False, False, True], "kept": [True, True, True, False]})
    tables["agreement_report"] = pd.DataFrame({
        "metric": ["raw_agreement", "cohens_kappa", "fleiss_kappa", "krippendorff_alpha_ordinal", "cohens_kappa"],
        "scope": ["batch", "batch", "batch", "batch", "annotator1|annotator2"],
        "value": [0.92, 0.866, 0.864, 0.865, 0.852], "ci_low": [0.9, 0.84, 0.84, 0.84, 0.82],
        "ci_high": [0.94, 0.89, 0.89, 0.89, 0.88], "n_items": [999] * 5, "band": ["almost perfect"] * 5,
        "interpretation": ["ready for training"] * 5})
    tables["cost_report"] = pd.DataFrame({
        "section": ["ledger", "ledger", "ledger"], "item": ["ai_label", "human_label", "total"], "quantity": [999.0, 2997.0, 999.0],
        "unit_usd": [0.0015, 0.5, 1.5015], "total_usd": [1.4985, 1498.5, 1499.9985], "note": ["judge", "3 annotators a pair", ""]})
    rng = np.random.default_rng(0)
    tables["routing"] = pd.DataFrame({"pair_id": tables["response_pairs"]["pair_id"],
                                      "route": rng.choice(["accepted", "spot_check", "human"], 999, p=[0.6, 0.05, 0.35])})
    return tables


CURRENT = CurrentVersions("pandalm-v1", {"judge_v1": "judge_v1@current"})


def stale_rows(tables: dict[str, pd.DataFrame], last_run: str | None = "pandalm-v1") -> pd.DataFrame:
    """The rows `prefpipe stale` shows for the batch (stale_cli.stale_view, as published_dataset passes them)."""
    labels = {k: tables[k].assign(batch_id="demo") for k in ("ai_labels", "human_annotations") if k in tables}
    return stale_view(labels, {"demo": last_run}, CURRENT, cost_ledger=tables.get("cost_report"))


@pytest.fixture(scope="module")
def rendered(report_tables) -> str:
    """The demo batch's page, rendered once for the module (drawing six figures takes seconds)."""
    return render_batch_report("demo", report_tables, current_guideline_version="pandalm-v1",
                               stale=stale_rows(report_tables),
                               generated_at=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc))


def test_cost_tile_shows_the_ledger_total(rendered):
    assert "$1,500.00" in rendered  # the ledger's total row, not the sum of its parts and ratios


def test_report_is_self_contained_and_escapes_text(rendered):
    page = rendered
    assert HOSTILE not in page and "&lt;img src=&quot;http://127.0.0.1:9/leak.png&quot;&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count('src="data:image/png;base64,') == 6
    assert 'href="http' not in page and "<link" not in page and "<script" not in page
    assert "Stale labels" in page and "old-guideline" in page  # 100 AI labels under the old guideline
    assert "Krippendorff" in page and "0.865" in page


def test_sections_without_data_say_so(report_tables):
    page = render_batch_report("empty", {"response_pairs": report_tables["response_pairs"].iloc[0:0]})
    assert "No agreement figures yet" not in page  # that text lives in the PNG
    assert page.count('src="data:image/png;base64,') == 3 and "No rows." in page


def test_written_under_the_reports_folder(data_dir, rendered):
    path = write_batch_report("demo", rendered)
    assert path == settings.reports_dir() / "demo.html" and path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    for bad in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="cannot name a report file"):
            report_path(bad)


@pytest.mark.browser
@pytest.mark.slow
def test_report_opens_in_headless_chromium(tmp_path, rendered):
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "demo.html"
    page_file.write_text(rendered, encoding="utf-8")
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri(), wait_until="load")
            widths = page.evaluate("Array.from(document.images).map(img => img.complete ? img.naturalWidth : 0)")
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert len(widths) == 6 and all(w > 0 for w in widths)
    assert requests == [page_file.as_uri()]  # nothing fetched beyond the file itself
    assert HOSTILE in text  # shown as text, not run as markup
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_a_batch_part_way_through_the_pipeline_still_renders(report_tables):
    """Only pairs and AI labels so far: no final labels, reliability or costs yet."""
    early = {k: report_tables[k] for k in ("response_pairs", "ai_labels")}
    page = render_batch_report("early", early, current_guideline_version="pandalm-v1", stale=stale_rows(early))
    assert "Judge report card" in page and "Stale labels" in page
    assert render_batch_report("nothing", {}).count("<section") == 4


def test_the_stale_section_agrees_with_prefpipe_stale(shared_data):
    """The demo as shipped: imported verdicts and imported human labels keep the version they were
    made under elsewhere, so `prefpipe stale` calls the batch up to date and so does the page,
    while its labels-by-version table still says what they were made under. Human labels made in
    prefpipe's app under an older guideline are kept and counted, gold answers among them."""
    tables = dict(pandalm_frames(shared_data))
    tables["ai_labels"] = tables["ai_labels"].assign(judge_prompt_version="external", guideline_version="pandalm-v1")
    current = CurrentVersions("new-version", {"judge_v1": "judge_v1@current"})
    labels = {k: tables[k].assign(batch_id="demo") for k in ("ai_labels", "human_annotations")}
    view = stale_view(labels, {"demo": "new-version"}, current)
    assert view.empty  # what `prefpipe stale` prints as "up to date"
    page = render_batch_report("demo", tables, current_guideline_version="new-version", stale=view)
    assert "Stale labels" not in page and "Everything a rerun would redo was made under" in page
    assert "pandalm-v1" in page  # the labels-by-version table

    app = tables["human_annotations"].head(30).assign(source="app", annotator_id="zoe")
    app.loc[app.index[:4], "is_gold"] = True
    tables["human_annotations"] = pd.concat([tables["human_annotations"], app], ignore_index=True)
    labels = {k: tables[k].assign(batch_id="demo") for k in ("ai_labels", "human_annotations")}
    view = stale_view(labels, {"demo": "new-version"}, current)
    page = render_batch_report("demo", tables, current_guideline_version="new-version", stale=view)
    assert "Stale labels" not in page and "30 human label(s) made in prefpipe" in page
    assert "4 of them gold answers, scored against the keys of the version" in page

    view = stale_view(labels, {"demo": "pandalm-v1"}, current)  # the last run used the old guidelines
    page = render_batch_report("demo", tables, current_guideline_version="new-version", stale=view)
    assert "Stale labels" in page and "prefpipe backfill --stale" in page and "last_run" in page


def test_the_columns_published_dataset_reads_make_the_same_page(report_tables, rendered):
    """published_dataset reads each table narrowed to its INPUTS columns and the response lengths
    instead of the text, and hands the judge card over: the page is the same to the byte."""
    from prefpipe.defs.outputs.published_dataset import INPUTS
    from prefpipe.reports.judge_card import judge_report_card, response_lengths

    narrow = {k: v[[c for c in INPUTS[k].metadata["columns"] if c in v.columns]] if k in INPUTS else v for k, v in report_tables.items()}
    assert "response_a" not in narrow["response_pairs"] and "raw" not in narrow["ai_labels"]
    card = judge_report_card(narrow["ai_labels"], narrow["final_labels"], response_lengths(report_tables["response_pairs"]).to_pandas())
    arrow = {k: v.astype({c: pd.StringDtype("pyarrow") for c in v.columns if str(v[c].dtype) in ("string", "object")}) for k, v in narrow.items()}
    page = render_batch_report("demo", arrow, current_guideline_version="pandalm-v1", stale=stale_rows(report_tables),
                               generated_at=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc), judge_card=card)
    assert page == rendered


def test_the_page_tells_the_batch_and_what_was_published():
    """Without shared data: the facts section and the publish section, or why nothing was published."""
    from dataclasses import replace

    from prefpipe_tests.reports.test_batch_story import demo_like

    waiting = replace(demo_like(), waiting=4, waiting_with_labels=1)
    page = render_batch_report("b", {}, facts=waiting, unpublished="Nothing published: no pair is complete yet: 4 waiting for people; no earlier files.")
    assert "How this batch was made" in page and "prefpipe asked no AI judge: 999 verdicts of gpt-3.5-turbo were imported" in page
    assert "4 pairs still wait for people (1 of them with some of their labels)" in page
    assert "Nothing published: no pair is complete yet: 4 waiting for people" in page and "waiting for people</div>" in page
    assert render_batch_report("nothing", {}).count("<section") == 4  # no facts given: the page is as it was
