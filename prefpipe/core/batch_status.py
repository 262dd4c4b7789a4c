"""How far each batch has come, as its last run left it: pairs, routes, accepted AI labels, the
pairs waiting for people with the labels they have and want, final labels by source, dataset rows.

One SQL over the pipeline's tables, run on the warehouse (`prefpipe status`) or on a run's own
frames registered under the same names (the final_labels asset's metadata), so the command line and
the Dagster UI count alike. A waiting pair's labels are counted as final_labels counts them: the
usable (filtered, not skipped) labels of annotators, or of experts for the expert route.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa

from prefpipe.core.routing import ROUTES
from prefpipe.core.warehouse import present_tables

STATUS_TABLES = ("routing", "final_labels", "filtered_annotations")
"""What the counts read; a batch whose run has not reached a table counts nothing there."""

_ROUTES_SQL = "SELECT batch_id, route, count(*) AS pairs FROM {p}routing {where} GROUP BY ALL"
_FINAL_SQL = "SELECT batch_id, source, count(*) AS pairs FROM {p}final_labels {where} GROUP BY ALL"
_WAITING_SQL = """
WITH waiting AS (
    SELECT r.batch_id, r.pair_id, r.route, {wanted} AS labels_wanted
    FROM {p}routing r
    WHERE r.route IN ('human', 'expert') {and_batch}
      AND NOT EXISTS (SELECT 1 FROM {p}final_labels f WHERE f.batch_id = r.batch_id AND f.pair_id = r.pair_id)
), usable AS (
    SELECT a.batch_id, a.pair_id, a.role, count(*) AS n
    FROM {p}filtered_annotations a
    WHERE a.label IS NOT NULL AND (a.batch_id, a.pair_id) IN (SELECT batch_id, pair_id FROM waiting)
    GROUP BY ALL
)
SELECT w.batch_id, w.route, w.labels_wanted, COALESCE(u.n, 0) AS labels_received, count(*) AS pairs
FROM waiting w LEFT JOIN usable u
  ON u.batch_id = w.batch_id AND u.pair_id = w.pair_id AND u.role = CASE WHEN w.route = 'expert' THEN 'expert' ELSE 'annotator' END
GROUP BY ALL ORDER BY w.batch_id, w.route DESC, labels_received DESC
"""


@dataclass
class BatchProgress:
    """One batch's counts as its last run left them (every route and source named, zero included)."""

    batch_id: str
    pairs: int = 0
    routes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    final: dict[str, int] = field(default_factory=lambda: {"ai": 0, "human": 0, "expert": 0})
    waiting: list[dict[str, object]] = field(default_factory=list)
    """Waiting pairs grouped: route, labels_wanted, labels_received, pairs."""

    @property
    def final_labels(self) -> int:
        return sum(self.final.values())

    @property
    def accepted_ai(self) -> int:
        return self.final["ai"]

    @property
    def pairs_waiting(self) -> int:
        return sum(int(w["pairs"]) for w in self.waiting)

    @property
    def labels_received(self) -> int:
        return sum(int(w["labels_received"]) * int(w["pairs"]) for w in self.waiting)

    @property
    def labels_wanted(self) -> int:
        return sum(int(w["labels_wanted"]) * int(w["pairs"]) for w in self.waiting)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "final_labels": self.final_labels, "accepted_ai": self.accepted_ai, "pairs_waiting": self.pairs_waiting,
                "labels_received": self.labels_received, "labels_wanted": self.labels_wanted}


def batch_progress(con: duckdb.DuckDBPyConnection, *, schema: str | None, batch_id: str | None = None) -> dict[str, BatchProgress]:
    """batch id -> BatchProgress, from STATUS_TABLES in `schema` (the warehouse's) or, with schema
    None, from relations of those names registered on `con` (a run's frames). One batch or all."""
    prefix = f"{schema}." if schema else ""
    present = present_tables(con) if schema else set(STATUS_TABLES)
    where, and_batch, params = ("WHERE batch_id = $batch", "AND r.batch_id = $batch", {"batch": batch_id}) if batch_id else ("", "", {})
    out: dict[str, BatchProgress] = {}

    wanted = "1"  # a routing table from before labels_wanted was recorded asked one label of each pair
    if "routing" in present and "labels_wanted" in {d[0] for d in con.execute(f"SELECT * FROM {prefix}routing LIMIT 0").description}:
        wanted = "COALESCE(r.labels_wanted, 1)"

    def rows(sql: str, *needs: str) -> list[tuple]:
        if not set(needs) <= present:
            return []
        return con.execute(sql.format(p=prefix, where=where, and_batch=and_batch, wanted=wanted), params).fetchall()

    for batch, route, n in rows(_ROUTES_SQL, "routing"):
        progress = out.setdefault(batch, BatchProgress(batch))
        progress.routes[route] = int(n)
        progress.pairs += int(n)
    for batch, source, n in rows(_FINAL_SQL, "final_labels"):
        out.setdefault(batch, BatchProgress(batch)).final[source] = int(n)
    for batch, route, wanted, received, n in rows(_WAITING_SQL, *STATUS_TABLES):
        out.setdefault(batch, BatchProgress(batch)).waiting.append(
            {"route": route, "labels_wanted": int(wanted), "labels_received": int(received), "pairs": int(n)})
    return dict(sorted(out.items()))


def frames_progress(batch_id: str, routing: pd.DataFrame, final_labels: pd.DataFrame, filtered_annotations: pd.DataFrame) -> BatchProgress:
    """batch_progress of one run's frames (without batch_id columns), as the warehouse will hold them."""
    frames = {"routing": (routing, ("pair_id", "route", "labels_wanted")), "final_labels": (final_labels, ("pair_id", "source")),
              "filtered_annotations": (filtered_annotations, ("pair_id", "role", "label"))}
    with duckdb.connect() as con:
        for name, (frame, columns) in frames.items():
            kept = frame[[c for c in columns if c in frame.columns]]
            table = pa.Table.from_pandas(kept, preserve_index=False)  # Arrow, not the frame: DuckDB's pandas scan warns on Arrow text
            con.register(name, table.append_column("batch_id", pa.array([batch_id] * len(kept), pa.string())))
        return batch_progress(con, schema=None, batch_id=batch_id).get(batch_id, BatchProgress(batch_id))


def waiting_text(progress: BatchProgress) -> str:
    """"3 pairs: 1 with 1 of 2 labels, 2 with 0 of 2" (experts' waits named as such)."""
    if not progress.waiting:
        return "none"
    parts = [f"{w['pairs']} with {w['labels_received']} of {w['labels_wanted']}" + (" (expert)" if w["route"] == "expert" else "")
             for w in progress.waiting]
    return f"{progress.pairs_waiting} pair(s): " + ", ".join(parts) + " label(s)"
