"""What happened to one batch, as counts: the facts its dataset card and HTML report state.

The card and the report used to describe the pipeline as designed ("an LLM judge labelled every pair
in both orders"), whatever the batch went through. Both now say only what these counts show: which
judges gave verdicts and whether prefpipe asked them or imported their verdicts, in one order or
both, how many pairs each route took, labels wanted of people and received, final labels by source,
the pairs still waiting, and the versions the labels were made under. Plain frames in, a frozen
dataclass out; the counting runs in DuckDB over Arrow, so a million pairs cost a few grouped scans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa

from prefpipe.core import pair_codes
from prefpipe.core.ingest import EXTERNAL_PROMPT_VERSION
from prefpipe.core.routing import PEOPLE_ROUTES, ROUTES


@dataclass(frozen=True)
class JudgeFacts:
    """The verdicts of one judge, either imported from the batch folder or asked for by prefpipe."""

    name: str
    imported: bool
    verdicts: int
    usable: int
    unparsed: int
    inconsistent: int
    failed: int
    both_orders: int
    """Verdicts given with A first and with B first."""
    one_order: int
    """Verdicts given in one order only (an imported judge's, or a judge asked for one order)."""
    prompt_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchFacts:
    batch_id: str
    pairs: int
    dropped: int
    judge_setting: str | None
    """batch.json `judge` ("none": no AI judge), None when unset."""
    judges: tuple[JudgeFacts, ...]
    routes: Mapping[str, int]
    """Pairs per route, every route named."""
    reasons: Mapping[str, Mapping[str, int]]
    """Route -> routing reason -> pairs."""
    labels_per_pair: tuple[int, ...]
    """Labels wanted of people per pair routed to them (spot checks and human; experts give one);
    empty when no pair went to people and nothing says."""
    labels_wanted: int
    labels_received: int
    """Usable labels on the pairs routed to people: people's on human and spot-check pairs, experts' on expert pairs;
    labels of annotators left out by reliability (gold-flagged) are not usable."""
    human_labels: int
    """Every usable human label of the batch (gold answers not counted)."""
    imported_human_labels: int
    skipped: int
    annotators: int
    annotators_left_out: int
    gold_answers: int
    final_by_source: Mapping[str, int]
    final_by_method: Mapping[str, int]
    ties: int
    waiting: int
    """Pairs routed to people (human or expert) with no final label yet."""
    waiting_with_labels: int
    """Of those, the pairs that have some of their labels."""
    ai_guideline_versions: Mapping[str, int] = field(default_factory=dict)
    human_guideline_versions: Mapping[str, int] = field(default_factory=dict)
    judge_prompt_versions: tuple[str, ...] = ()
    """prefpipe's own judge prompt versions (imported verdicts have none)."""

    @property
    def final(self) -> int:
        return sum(self.final_by_source.values())

    @property
    def live_pairs(self) -> int:
        return self.pairs - self.dropped

    @property
    def sent_to_people(self) -> int:
        return sum(self.routes.get(r, 0) for r in PEOPLE_ROUTES)


def _table(frame: pd.DataFrame | None, columns: Mapping[str, str]) -> pa.Table:
    """The frame's columns as Arrow ("text", "bool", "int"); a missing frame or column reads as nulls."""
    n = 0 if frame is None else len(frame)
    arrays = {}
    for name, kind in columns.items():
        if frame is None or name not in frame.columns:
            arrays[name] = pa.nulls(n, {"text": pa.large_string(), "bool": pa.bool_(), "int": pa.int64()}[kind])
        elif kind == "text":
            arrays[name] = pair_codes.text_array(frame[name])
        elif kind == "bool":  # nullable pandas arrays hand Arrow their values and mask: no Python object per row
            arrays[name] = pa.array(frame[name].astype("boolean"), pa.bool_())
        else:
            arrays[name] = pa.array(pd.to_numeric(frame[name], errors="coerce").astype("Int64"), pa.int64())
    return pa.table(arrays)


JUDGES_SQL = f"""
SELECT judge, judge_prompt_version = '{EXTERNAL_PROMPT_VERSION}' AS imported, count(*) AS verdicts,
       count(*) FILTER (status = 'ok') AS usable, count(*) FILTER (status = 'unparsed') AS unparsed,
       count(*) FILTER (status = 'inconsistent') AS inconsistent, count(*) FILTER (status = 'failed') AS failed,
       count(*) FILTER (label_ab IS NOT NULL AND label_ba IS NOT NULL) AS both_orders,
       count(*) FILTER ((label_ab IS NULL) <> (label_ba IS NULL)) AS one_order,
       list(DISTINCT judge_prompt_version ORDER BY judge_prompt_version) FILTER (judge_prompt_version IS NOT NULL
            AND judge_prompt_version <> '{EXTERNAL_PROMPT_VERSION}') AS prompt_versions
FROM ai GROUP BY ALL ORDER BY imported DESC, judge
"""

PEOPLE_SQL = """
WITH asked AS (SELECT pair_id, route FROM routed WHERE route IN $people),
     left_out AS (SELECT annotator_id FROM reliability WHERE NOT coalesce(kept, true)),
     usable AS (SELECT pair_id, role = 'expert' AS expert, count(*) AS n FROM human
                WHERE label IS NOT NULL AND NOT coalesce(is_gold, false)
                  AND (role = 'expert' OR annotator_id NOT IN (SELECT annotator_id FROM left_out)) GROUP BY ALL),
     got AS (SELECT a.pair_id, coalesce(u.n, 0) AS n, f.pair_id IS NOT NULL AS final
             FROM asked a LEFT JOIN usable u ON u.pair_id = a.pair_id AND u.expert = (a.route = 'expert')
             LEFT JOIN (SELECT DISTINCT pair_id FROM final) f ON f.pair_id = a.pair_id),
     waits AS (SELECT n FROM got JOIN asked USING (pair_id) WHERE NOT final AND route <> 'spot_check')
SELECT (SELECT coalesce(sum(n), 0) FROM got) AS received, (SELECT count(*) FROM waits) AS waiting,
       (SELECT count(*) FILTER (n > 0) FROM waits) AS waiting_with_labels
"""
"""Labels received on the pairs routed to people (people's on human and spot-check pairs, experts'
on expert pairs), counted as filtered_annotations keeps them (an annotator reliability left out
does not count: the same figure as prefpipe.core.batch_status), and the human and expert pairs
with no final label yet: waiting (with some labels). A spot check never waits: its AI label stands meanwhile (as prefpipe.core.batch_status counts it)."""

HUMAN_SQL = """
SELECT count(*) FILTER (label IS NOT NULL AND NOT coalesce(is_gold, false)) AS labels,
       count(*) FILTER (label IS NOT NULL AND NOT coalesce(is_gold, false) AND starts_with(coalesce(source, ''), 'import:')) AS imported,
       count(*) FILTER (label IS NULL) AS skipped, count(*) FILTER (coalesce(is_gold, false)) AS gold,
       count(DISTINCT annotator_id) AS annotators
FROM human
"""


def _counts(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in con.execute(sql).fetchall() if k is not None}


def batch_facts(
    batch_id: str,
    *,
    response_pairs: pd.DataFrame | None,
    ai_labels: pd.DataFrame | None,
    routing: pd.DataFrame | None,
    human_annotations: pd.DataFrame | None,
    final_labels: pd.DataFrame | None,
    annotator_reliability: pd.DataFrame | None = None,
    judge_setting: str | None = None,
    labels_per_pair: int | None = None,
) -> BatchFacts:
    """The facts of one batch from its warehouse rows (batch_id columns are ignored; any frame may be
    missing or empty). `labels_per_pair`: what the run asked of people, used where the routing
    table has no `labels_wanted` column (tables written before it existed)."""
    pairs = _table(response_pairs, {"dropped": "bool"})
    ai = _table(ai_labels, dict.fromkeys(("pair_id", "judge", "status", "label_ab", "label_ba", "judge_prompt_version", "guideline_version", "label"), "text"))
    has_wanted = routing is not None and "labels_wanted" in routing.columns
    route = _table(routing, {"pair_id": "text", "route": "text", "reason": "text", "labels_wanted": "int"})
    human = _table(human_annotations, {"pair_id": "text", "annotator_id": "text", "label": "text", "role": "text", "source": "text",
                                       "is_gold": "bool", "guideline_version": "text"})
    final = _table(final_labels, {"pair_id": "text", "label": "text", "source": "text", "method": "text"})
    reliability = _table(annotator_reliability, {"annotator_id": "text", "kept": "bool"})
    with duckdb.connect() as con:
        for name, table in (("pairs", pairs), ("ai", ai), ("routing", route), ("human", human), ("final", final), ("reliability", reliability)):
            con.register(name, table)
        wanted = "labels_wanted" if has_wanted else f"CASE WHEN route = 'expert' THEN 1 WHEN route IN ('human', 'spot_check') THEN {int(labels_per_pair or 0)} END"
        con.execute(f"CREATE TEMP VIEW routed AS SELECT pair_id, route, reason, {wanted} AS labels_wanted FROM routing")
        judges = tuple(
            JudgeFacts(str(name), bool(imported), *map(int, counts), prompt_versions=tuple(versions or ()))
            for name, imported, *counts, versions in con.execute(JUDGES_SQL).fetchall()
        )
        routes = {r: 0 for r in ROUTES} | _counts(con, "SELECT route, count(*) FROM routed GROUP BY route")
        reasons: dict[str, dict[str, int]] = {}
        for r, reason, n in con.execute("SELECT route, coalesce(reason, '(none)'), count(*) FROM routed GROUP BY ALL ORDER BY 3 DESC, 2").fetchall():
            reasons.setdefault(str(r), {})[str(reason)] = int(n)
        per_pair = tuple(int(v) for (v,) in con.execute(
            "SELECT DISTINCT labels_wanted FROM routed WHERE route IN ('human', 'spot_check') AND labels_wanted > 0 ORDER BY 1").fetchall())
        if not per_pair and labels_per_pair:
            per_pair = (int(labels_per_pair),)
        people = list(PEOPLE_ROUTES)
        wanted_total = con.execute("SELECT coalesce(sum(labels_wanted), 0) FROM routed WHERE route IN $people", {"people": people}).fetchone()[0]
        received, waiting, waiting_with_labels = con.execute(PEOPLE_SQL, {"people": people}).fetchone()
        labels, imported, skipped, gold, annotators = con.execute(HUMAN_SQL).fetchone()
        left_out = con.execute("SELECT count(*) FILTER (NOT coalesce(kept, true)) FROM reliability").fetchone()[0]
        facts = BatchFacts(
            batch_id=batch_id,
            pairs=pairs.num_rows,
            dropped=int(con.execute("SELECT count(*) FILTER (coalesce(dropped, false)) FROM pairs").fetchone()[0]),
            judge_setting=judge_setting,
            judges=judges,
            routes=routes,
            reasons=reasons,
            labels_per_pair=per_pair,
            labels_wanted=int(wanted_total),
            labels_received=int(received),
            human_labels=int(labels),
            imported_human_labels=int(imported),
            skipped=int(skipped),
            annotators=int(annotators),
            annotators_left_out=int(left_out),
            gold_answers=int(gold),
            final_by_source=_counts(con, "SELECT source, count(*) FROM final GROUP BY source ORDER BY 2 DESC, 1"),
            final_by_method=_counts(con, "SELECT method, count(*) FROM final GROUP BY method ORDER BY 2 DESC, 1"),
            ties=int(con.execute("SELECT count(*) FILTER (label = 'A=B') FROM final").fetchone()[0]),
            waiting=int(waiting),
            waiting_with_labels=int(waiting_with_labels),
            ai_guideline_versions=_counts(con, "SELECT guideline_version, count(*) FROM ai GROUP BY 1 ORDER BY 2 DESC, 1"),
            human_guideline_versions=_counts(
                con, "SELECT guideline_version, count(*) FROM human WHERE label IS NOT NULL AND NOT coalesce(is_gold, false) GROUP BY 1 ORDER BY 2 DESC, 1"),
            judge_prompt_versions=tuple(sorted({v for j in judges for v in j.prompt_versions})),
        )
    return facts
