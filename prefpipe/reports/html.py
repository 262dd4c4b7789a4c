"""One self-contained HTML report per batch, for people who do not open Dagster.

The page carries everything inline: CSS in a style element, figures as base64 PNG data URIs, and a
Content-Security-Policy that forbids loading anything else, so it opens from a file, an email
attachment or an artifact store the same way, and never calls out. Every piece of text from the
data (annotator ids, judge names, versions) is HTML-escaped.

A batch can hold a million pairs: the page summarises (counts, label shares, versions counted in
DuckDB, the judge card's one query) and shows at most `max_rows` rows of any table; no table is
copied or rendered whole, so the caller may pass frames narrowed to the columns used here.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from prefpipe.core import schemas, settings
from prefpipe.core.batch_facts import BatchFacts
from prefpipe.core.dataset_versions import Publication
from prefpipe.core.files import atomic_write
from prefpipe.exports.common import arrow_table, dropped_mask
from prefpipe.reports import plots
from prefpipe.reports.batch_story import how_it_was_made, version_sentences
from prefpipe.reports.judge_card import judge_report_card
from prefpipe.core.staleness import label_versions, unit_costs

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --blue:#2f6fde; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #102a43; color: #fff; padding: 24px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #bcccdc; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 20px 24px; margin: 0 0 20px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin: 0 0 20px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.tile .k { color: var(--muted); font-size: 12px; letter-spacing: .02em; }
.tile .v { font-size: 22px; font-weight: 600; }
.tile .s { color: var(--muted); font-size: 12px; }
figure { margin: 0 0 12px; }
figure img { max-width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; }
td:first-child { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: var(--muted); margin: 4px 0 12px; }
.warn { border-left: 4px solid #e8833a; }
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}"></figure>'


def _fmt(value: object, column: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "—"
    if isinstance(value, float):
        if column.endswith(("_usd", "cost")) or "cost" in column:
            return f"{value:,.4f}"
        return f"{value:.3f}"
    return str(value)


def table_html(df: pd.DataFrame, *, max_rows: int = 200) -> str:
    """An escaped HTML table (numbers right-aligned), at most max_rows rows."""
    if df is None or df.empty:
        return '<p class="note">No rows.</p>'
    shown = df.head(max_rows)
    numeric = {c for c in shown.columns if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])}
    # <wbr> after underscores lets long column names wrap instead of widening the table
    head = "".join(
        f'<th class="{"num" if c in numeric else ""}">{_e(c).replace("_", "_<wbr>")}</th>' for c in shown.columns
    )
    body = []
    for row in shown.astype("object").itertuples(index=False, name=None):
        cells = "".join(
            f'<td class="{"num" if c in numeric else ""}">{_e(_fmt(v, c))}</td>' for c, v in zip(shown.columns, row)
        )
        body.append(f"<tr>{cells}</tr>")
    more = f'<p class="note">{len(df) - max_rows} more row(s) not shown.</p>' if len(df) > max_rows else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{more}'


def judge_card_table(card: pd.DataFrame) -> pd.DataFrame:
    """The judge card turned for reading: one row per measure, one column per judge, rates as
    percentages, cost in dollars."""
    rows = []
    for column in card.columns.drop("judge"):
        values = card[column]
        if column.startswith("n_"):
            shown = [f"{int(v):,}" if pd.notna(v) else "—" for v in values]
        elif column.startswith("cost"):
            shown = [f"${float(v):,.2f}" if pd.notna(v) else "—" for v in values]
        else:
            shown = [f"{float(v):.1%}" if pd.notna(v) else "—" for v in values]
        rows.append([column.replace("_", " "), *shown])
    return pd.DataFrame(rows, columns=["measure", *card["judge"].astype(str)])


def _tile(key: str, value: str, sub: str = "") -> str:
    return f'<div class="tile"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div><div class="s">{_e(sub)}</div></div>'


def _list(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>"


def _section(title: str, *parts: str, warn: bool = False) -> str:
    attrs = ' class="warn"' if warn else ""
    return f"<section{attrs}><h2>{_e(title)}</h2>{''.join(parts)}</section>"


def _get(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """The table, or an empty frame with its schema's columns when the stage has not run yet."""
    frame = tables.get(name)
    if frame is None or (frame.empty and len(frame.columns) == 0):
        return schemas.empty(schemas.TABLES[name])
    return frame


def _staleness_section(view: pd.DataFrame, current_guideline_version: str | None) -> str:
    """What a rerun would redo (warn) and which human labels are kept under older versions."""
    from prefpipe.core.stale_view import batches_to_rerun

    current = f"current guideline version {_e(current_guideline_version)}" if current_guideline_version else "the current guidelines"
    shown = view.drop(columns="batch_id")
    kept = _kept_humans(shown)
    if batches_to_rerun(view):
        return _section(
            "Stale labels",
            f'<p class="note">These stages were made under versions older than the {current}; '
            f"<code>prefpipe backfill --stale</code> reruns the batch.</p>",
            table_html(shown[shown["stage"].ne("human_annotations")]),
            kept,
            warn=True,
        )
    return _section("Versions", f'<p class="note">Everything a rerun would redo was made under the {current}'
                                f" (imported labels keep the version they were made under).</p>", kept)


def _kept_humans(view: pd.DataFrame) -> str:
    humans = view[view["stage"].eq("human_annotations") & view["n_stale"].fillna(0).gt(0)]
    if humans.empty:
        return ""
    n, gold = int(humans["n_stale"].sum()), int(humans["n_gold_stale"].fillna(0).sum())
    return (f'<p class="note">{n:,} human label(s) made in prefpipe\'s app under older guidelines are kept and marked'
            + (f"; {gold:,} of them gold answers, scored against the keys of the version they were made under" if gold else "")
            + ".</p>" + table_html(humans))


def _label_versions(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """staleness.label_versions over the label tables' version columns handed to DuckDB in Arrow:
    DuckDB reads a pandas column of Arrow-backed text value by value, an Arrow one at once."""
    with duckdb.connect() as con:
        for name, frame in tables.items():
            con.register(name, arrow_table(frame, dict.fromkeys(("batch_id", "label", "guideline_version", "judge_prompt_version"))))
        return label_versions(con)


def render_batch_report(
    batch_id: str,
    tables: Mapping[str, pd.DataFrame],
    *,
    current_guideline_version: str | None = None,
    stale: pd.DataFrame | None = None,
    human_unit_usd: float | None = None,
    reliability_threshold: float = 0.6,
    generated_at: dt.datetime | None = None,
    judge_card: pd.DataFrame | None = None,
    facts: BatchFacts | None = None,
    publication: Publication | None = None,
    unpublished: str | None = None,
) -> str:
    """The report page for one batch from its warehouse rows (tables keyed by warehouse name;
    any may be missing or empty, its section then says so).

    `stale`: this batch's rows of the stale view (prefpipe.cli.stale.stale_view, the same rows
    `prefpipe stale` prints and the stale-batch check reads), so the page never disagrees with them:
    imported labels keep the version they were made under and are not stale. None leaves the
    staleness section out (only the labels-by-version table is shown). `judge_card`: the batch's
    judge report card when the caller has it already (published_dataset shows it too), else it is
    computed from the tables. `facts` (prefpipe.core.batch_facts): the batch's own story, shown
    first; `publication`: the dataset version this run published, or `unpublished`: why it
    published nothing and what became of earlier files."""
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    pairs = _get(tables, "response_pairs")
    ai = _get(tables, "ai_labels")
    human = _get(tables, "human_annotations")
    final = _get(tables, "final_labels")
    reliability = _get(tables, "annotator_reliability")
    agreement = _get(tables, "agreement_report")
    cost = _get(tables, "cost_report")
    routing = _get(tables, "routing")
    if human_unit_usd is None and not cost.empty:
        human_unit_usd = unit_costs(cost).get("human_annotations")
    with_batch = {  # the stages label_versions counts (the other tables' versions are theirs)
        name: (frame if "batch_id" in frame.columns else frame.assign(batch_id=batch_id))
        for name, frame in tables.items()
        if name in ("ai_labels", "human_annotations") and frame is not None and "guideline_version" in frame.columns
    }

    dropped = int(dropped_mask(pairs).sum())
    tiles = [_tile("pairs", f"{len(pairs) - dropped:,}", f"{dropped:,} dropped")]
    if not ai.empty:
        ok = int(ai["label"].notna().sum())
        tiles.append(_tile("AI labels", f"{ok:,}", f"of {len(ai):,} verdicts usable"))
    if not human.empty:
        tiles.append(_tile("human labels", f"{int(human['label'].notna().sum()):,}",
                           f"{human['annotator_id'].nunique():,} annotators"))
    if not final.empty:
        by_source = final["source"].fillna("?").value_counts()
        tiles.append(_tile("final labels", f"{len(final):,}", ", ".join(f"{k} {v:,}" for k, v in by_source.items())))
    if not agreement.empty:
        alpha = agreement[agreement["metric"].astype(str).eq("krippendorff_alpha_ordinal")
                          & ~agreement["scope"].astype(str).str.contains("|", regex=False)]
        if not alpha.empty and pd.notna(alpha["value"].iloc[0]):
            tiles.append(_tile("Krippendorff's α", f"{float(alpha['value'].iloc[0]):.3f}", str(alpha["band"].iloc[0] or "")))
    if not cost.empty:
        ledger = cost[cost["section"].eq("ledger")] if "section" in cost else cost
        total = ledger.loc[ledger["item"].eq("total"), "total_usd"]  # the ledger's own total: its other rows are parts and ratios of it
        if len(total):
            tiles.append(_tile("cost so far", f"${float(total.iloc[0]):,.2f}", "from the ledger"))

    sections = []
    if facts is not None:
        if facts.waiting:
            tiles.append(_tile("waiting for people", f"{facts.waiting:,}", f"{facts.waiting_with_labels:,} with some labels"))
        rows = publication.version.rows if publication is not None else 0 if unpublished is not None else None
        sections.append(_section("How this batch was made", _list(how_it_was_made(facts, rows=rows))))
    if publication is not None:
        sections.append(_section("Published dataset", _list(version_sentences(publication))))
    elif unpublished is not None:
        sections.append(_section("Published dataset", f'<p class="note">{_e(unpublished)}</p>', warn=True))
    sections.append(_section(
        "Agreement",
        _img(plots.agreement_plot(agreement), "Agreement metrics with confidence intervals"),
        table_html(agreement),
    ))
    sections.append(_section(
        "Annotators",
        _img(plots.reliability_plot(reliability, threshold=reliability_threshold), "Annotator reliability"),
        table_html(reliability),
    ))
    distributions = {}
    if not final.empty:
        sources = "+".join(sorted(map(str, final["source"].dropna().unique())))
        distributions[f"final ({sources})" if sources else "final"] = final["label"]
    if not human.empty:
        distributions["annotations"] = human["label"]
    if not ai.empty:
        distributions["ai"] = ai["label"]
    versions = _label_versions(with_batch) if with_batch else pd.DataFrame()
    version_parts = [_img(plots.label_distribution_plot(distributions), "Label distribution")]
    if not versions.empty:
        version_parts += [
            _img(plots.version_plot(versions), "Labels by guideline version"),
            '<p class="note">Labels by the guideline and judge prompt version they were made under.</p>',
            table_html(versions.drop(columns="batch_id")),
        ]
    sections.append(_section("Labels", *version_parts))
    if stale is not None:
        sections.append(_staleness_section(stale, current_guideline_version))
    if not ai.empty:
        card = pd.DataFrame() if pairs.empty else judge_card if judge_card is not None else judge_report_card(ai, final, pairs)
        sections.append(_section(
            "Judge report card",
            table_html(judge_card_table(card)) if not card.empty else '<p class="note">No pairs to compare against.</p>',
            _img(plots.judge_bias_plot(card), "Judge position and length bias") if not card.empty else "",
        ))
    cost_parts = []
    if not routing.empty:
        by_route = plots.cost_by_route(routing, ai, human, human_unit_usd=human_unit_usd)
        cost_parts += [_img(plots.cost_per_route_plot(by_route), "Cost per pair by route"), table_html(by_route)]
    cost_parts.append(table_html(cost))
    sections.append(_section("Cost", *cost_parts))

    subtitle = f"Generated {generated_at:%Y-%m-%d %H:%M} UTC"
    if current_guideline_version:
        subtitle += f" · current guideline version {current_guideline_version}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>prefpipe report · {_e(batch_id)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Batch {_e(batch_id)}</h1><p>{_e(subtitle)}</p></header>"
        f'<main><div class="tiles">{"".join(tiles)}</div>{"".join(sections)}</main></body></html>\n'
    )


def report_path(batch_id: str, folder: Path | None = None) -> Path:
    """<folder>/<batch_id>.html (default: the data folder's reports/); a batch id that would leave
    the folder is refused."""
    if not batch_id or "/" in batch_id or "\\" in batch_id or batch_id in (".", "..") or batch_id.startswith("."):
        raise ValueError(f"batch id {batch_id!r} cannot name a report file")
    return (Path(folder) if folder is not None else settings.reports_dir()) / f"{batch_id}.html"


def write_batch_report(batch_id: str, page: str, folder: Path | None = None) -> Path:
    """Write the page atomically to <folder>/<batch_id>.html and return the path."""
    return atomic_write(report_path(batch_id, folder), lambda tmp: tmp.write_text(page, encoding="utf-8"))
