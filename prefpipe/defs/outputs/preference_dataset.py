"""The `preference_dataset` asset: the batch as training rows; and its checks: the blocking check
that the export is well formed, and one that no response in it is empty.

A batch can hold a million pairs: the rows are joined and oriented in DuckDB over Arrow (the text is
never turned into Python strings), and the checks run their SQL on the batch's rows in the warehouse
(a frame, as the tests pass, goes through the same SQL), so the table's text is never loaded."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.core import schemas
from prefpipe.core.jsonl import sql_blank
from prefpipe.core.labels import DIRECTION, STRENGTH
from prefpipe.core.settings import WAREHOUSE_SCHEMA
from prefpipe.core.warehouse import arrow_frame, quote, read_only
from prefpipe.defs.common import BATCH_ASSET, WARN, batch_check, check_md, user_errors, with_batch
from prefpipe.defs.resources import WarehouseReader
from prefpipe.exports.common import arrow_column, arrow_table, sql_case

TEXTS = ("prompt", "response_a", "response_b")

ORIENT_SQL = f"""
SELECT f.row AS final_row, p.row AS pair_row, {sql_case('f.label', DIRECTION)} = 'A' AS a_wins,
       {sql_case('f.label', STRENGTH)} * CAST(f.confidence AS DOUBLE) AS margin, f.source || ':' || f.method AS label_source
FROM final f JOIN pairs p ON p.pair_id = f.pair_id
WHERE {sql_case('f.label', DIRECTION)} IN ('A', 'B')
ORDER BY f.pair_id
"""
"""prefpipe.core.dataset.preference_rows in SQL: each decisive final label joined to its pair
(ties left out), whether A won, margin = strength x confidence, by pair id; the text is taken by
row number afterwards, so the join and the sort never carry it."""


def _rows(frame: pd.DataFrame, columns: dict[str, pa.DataType]) -> pa.Table:
    table = arrow_table(frame, columns)
    return table.append_column("row", pa.array(np.arange(table.num_rows)))


def preference_frame(final_labels: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """core.dataset.preference_rows' rows (schemas.PREFERENCE_DATASET), made in DuckDB and Arrow:
    the responses stay in Arrow buffers instead of becoming a million Python strings, and are
    copied once, into chosen and rejected. A pair id the join gives twice (a pair or a final label
    repeated) is refused, as the merge's one-to-one validation refused it."""
    final = _rows(final_labels, {"pair_id": pa.large_string(), "label": pa.large_string(), "confidence": pa.float64(), "source": pa.string(),
                                 "method": pa.string(), "guideline_version": pa.large_string()})
    texts = _rows(pairs, {"pair_id": pa.large_string(), **dict.fromkeys(TEXTS, pa.large_string())})
    with duckdb.connect() as con:
        con.register("final", final.select(["pair_id", "label", "confidence", "source", "method", "row"]))
        con.register("pairs", texts.select(["pair_id", "row"]))
        oriented = con.execute(ORIENT_SQL).to_arrow_table()
    pair_ids = final["pair_id"].take(oriented["final_row"])
    repeated = pc.sum(pc.equal(pair_ids[1:], pair_ids[:-1])).as_py() if len(pair_ids) > 1 else 0  # sorted: a repeat is next to itself
    if repeated:
        raise ValueError(f"preference_dataset: {repeated} pair id(s) repeated in the final labels or the pairs (one row a pair expected)")
    at, of, a_wins = oriented["final_row"], oriented["pair_row"].to_numpy(), oriented["a_wins"].to_numpy()
    from_a, from_b = pa.array(of, mask=~a_wins), pa.array(of, mask=a_wins)  # a take with a null index copies no text
    rows = pa.table({
        "pair_id": pair_ids, "prompt": texts["prompt"].take(of),
        "chosen": pc.coalesce(texts["response_a"].take(from_a), texts["response_b"].take(from_b)),
        "rejected": pc.coalesce(texts["response_b"].take(from_a), texts["response_a"].take(from_b)),
        "label": final["label"].take(at), "margin": oriented["margin"], "label_source": oriented["label_source"],
        "guideline_version": final["guideline_version"].take(at),
    })
    return schemas.conform(arrow_frame(rows), schemas.PREFERENCE_DATASET, name="preference_dataset")


@dg.asset(**BATCH_ASSET, group_name="outputs", deps=["response_pairs"])  # its texts read here, freed before the rows are written
@user_errors
def preference_dataset(context: dg.AssetExecutionContext, final_labels: pd.DataFrame, warehouse_reader: WarehouseReader) -> pd.DataFrame:
    """The batch as training data in TRL's format: prompt, chosen, rejected, with a margin (label
    strength x confidence), where the label came from and its guideline version. Pairs whose final
    label is a tie carry no preference and are left out. Its blocking check must pass before
    `published_dataset` writes any file."""
    batch_id = context.partition_key
    rows = preference_frame(final_labels, warehouse_reader.read_tables(("response_pairs",), batch_id=batch_id, columns=("pair_id", *TEXTS),
                                                                       text_in_arrow=True)["response_pairs"])
    context.add_output_metadata(
        {
            "rows": len(rows),
            "ties_left_out": int((final_labels["label"] == "A=B").sum()),
            "by_source": dg.MetadataValue.json(rows["label_source"].value_counts().to_dict()),
            "preview": dg.MetadataValue.md(rows.head(3)[["pair_id", "label", "margin", "label_source"]].to_markdown(index=False)),
        }
    )
    return with_batch(rows, schemas.PREFERENCE_DATASET, batch_id, table="preference_dataset")


def _only_text(values: pd.Series) -> bool:
    """Every value is a str or missing (checked in C, not per value in Python)."""
    return isinstance(values.dtype, pd.StringDtype) or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")


def _is_text(values: pd.Series) -> pd.Series:
    if _only_text(values):
        return values.notna()
    return values.map(lambda v: isinstance(v, str)).astype(bool)


TEXTS_CHECKED = ("prompt", "chosen", "rejected")
NO_ROWS = "no preference rows: nothing to train on (no final label yet, or only ties)"

WAREHOUSE_ROWS = (
    "SELECT row_number() OVER () AS row, pair_id, label, label_source, prompt, chosen, rejected, "
    + ", ".join(f"{c} IS NOT NULL AS {c}_text" for c in TEXTS_CHECKED)
    + ", margin, margin IS NOT NULL AND NOT isnan(margin) AS margin_given FROM {table} WHERE batch_id = {batch}"
)
"""A batch's preference_dataset rows as the checks read them, in the warehouse: the text never
leaves DuckDB (a million rows' responses are not loaded to be looked at)."""


def frame_rows(rows: pd.DataFrame) -> pa.Table:
    """A frame's rows as the checks read them (WAREHOUSE_ROWS' columns): text in Arrow, where a value
    that is not a str is null with its <col>_text flag false; margin as a number, margin_given when
    the frame has one (a value that is not a number is given and bad)."""
    columns = {"row": pa.array(np.arange(len(rows))), **{c: arrow_column(rows[c], pa.string()) for c in ("pair_id", "label", "label_source")}}
    for c in TEXTS_CHECKED:
        text = _is_text(rows[c])
        columns[c] = arrow_column(rows[c] if _only_text(rows[c]) else rows[c].where(text, None), pa.string())
        columns[f"{c}_text"] = pa.array(text.to_numpy(dtype=bool))
    columns["margin"] = pa.array(pd.to_numeric(rows["margin"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
    columns["margin_given"] = pa.array(rows["margin"].notna().to_numpy(dtype=bool))
    return pa.table(columns)


PROBLEMS: dict[str, str] = {
    **{f"whose `{c}` is missing or not text": f"NOT {c}_text" for c in TEXTS_CHECKED},
    "with an empty `prompt`": f"prompt_text AND coalesce({sql_blank('prompt')}, false)",
    "whose `chosen` equals `rejected`": "coalesce(chosen = rejected, false)",
    "with a margin that is not a finite number >= 0": "margin_given AND (margin IS NULL OR NOT isfinite(margin) OR margin < 0)",
    "with a missing or repeated `pair_id`": "pair_id IS NULL OR copies > 1",
}
"""What makes a row unusable as training data, in the order the check lists it, as SQL over the rows."""

PROBLEMS_SQL = "SELECT count(*) AS n, " + ", ".join(
    f"count(*) FILTER ({cond}) AS n{i}, arg_min(coalesce(pair_id, '<NA>'), row, 5) FILTER ({cond}) AS ids{i}" for i, cond in enumerate(PROBLEMS.values())
) + " FROM (SELECT *, count(*) OVER (PARTITION BY pair_id) AS copies FROM rows)"

BLANK = {c: f"{c}_text AND coalesce({sql_blank(c)}, false)" for c in ("chosen", "rejected")}

EMPTY_SQL = f"""
SELECT row, pair_id, label, label_source, CASE WHEN {BLANK['chosen']} THEN 'chosen' ELSE 'rejected' END AS empty,
       count(*) FILTER ({BLANK['chosen']}) OVER () AS empty_chosen, count(*) FILTER ({BLANK['rejected']}) OVER () AS empty_rejected
FROM rows WHERE {BLANK['chosen']} OR {BLANK['rejected']} ORDER BY row
"""
"""The rows with an empty chosen or rejected response, and how many of each."""


def problems_in(con: duckdb.DuckDBPyConnection, rows: str = "") -> tuple[int, list[str]]:
    """(rows, what makes the relation `rows` unusable as training data), in one query; `rows`: a
    WITH clause that defines it, when it is not a registered table."""
    found = con.execute(rows + PROBLEMS_SQL).fetchone()
    n, problems = found[0], []
    for i, what in enumerate(PROBLEMS):
        hits, ids = found[1 + 2 * i], found[2 + 2 * i]
        if hits:
            problems.append(f"{hits} row(s) {what} (e.g. {', '.join(ids)})")
    return n, problems


def export_problems(rows: pd.DataFrame) -> list[str]:
    """What makes preference_dataset rows unusable as training data (empty list: nothing)."""
    if rows.empty:
        return [NO_ROWS]
    missing = [c for c in schemas.PREFERENCE_DATASET if c not in rows.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    with duckdb.connect() as con:
        con.register("rows", frame_rows(rows))
        return problems_in(con)[1]


def _result(n: int, problems: list[str]) -> dg.AssetCheckResult:
    metadata = {"rows": n, "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "_none_")}
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                               description="; ".join(problems) or None)


def export_result(rows: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(len(rows), export_problems(rows))


def _empty_result(n: int, hit: pd.DataFrame) -> dg.AssetCheckResult:
    """The check's result from EMPTY_SQL's rows (pair_id, label and label_source as the rows hold them)."""
    counts = {k: int(hit[k].iloc[0]) if len(hit) else 0 for k in ("empty_chosen", "empty_rejected")}
    return dg.AssetCheckResult(
        passed=hit.empty, severity=WARN,
        metadata={"rows": n, **counts, "rows_with_an_empty_response": check_md(hit[["pair_id", "label", "label_source", "empty"]])},
    )


def empty_response_result(rows: pd.DataFrame) -> dg.AssetCheckResult:
    """No preference row whose chosen or rejected response is empty text (WARN listing them)."""
    if rows.empty or not {"chosen", "rejected"} <= set(rows.columns):
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={"rows": len(rows)})
    with duckdb.connect() as con:
        con.register("rows", frame_rows(rows))
        hit = con.execute(EMPTY_SQL).df()
    at = hit["row"].to_numpy()
    for c in ("pair_id", "label", "label_source"):  # shown as the frame holds them
        hit[c] = rows[c].iloc[at].to_numpy()
    return _empty_result(len(rows), hit)


def warehouse_rows(batch_id: str) -> str:
    """The WITH clause that makes `rows` a batch's preference_dataset rows in the warehouse."""
    table, batch = f"{WAREHOUSE_SCHEMA}.{quote('preference_dataset')}", "'" + batch_id.replace("'", "''") + "'"
    return f"WITH rows AS ({WAREHOUSE_ROWS.format(table=table, batch=batch)}) "


def waiting_in(con: duckdb.DuckDBPyConnection, batch_id: str) -> int:
    """How many of the batch's pairs wait for people, by the warehouse (as `prefpipe status` counts them)."""
    from prefpipe.core.batch_status import batch_progress

    progress = batch_progress(con, schema=WAREHOUSE_SCHEMA, batch_id=batch_id).get(batch_id)
    return progress.pairs_waiting if progress is not None else 0


def _nothing_yet(waiting: int) -> dg.AssetCheckResult:
    """No row to check. Waiting pairs make that a state, not a failure: the check passes and says so.
    With nothing waiting (every final label a tie, or no pair at all) there is nothing to train on:
    a WARN, which does not block, since nothing is malformed; published_dataset writes no file."""
    if waiting:
        return dg.AssetCheckResult(passed=True, metadata={"rows": 0, "pairs_waiting": waiting},
                                   description=f"no row yet: {waiting} pair(s) waiting for people")
    return dg.AssetCheckResult(passed=False, severity=WARN, metadata={"rows": 0, "pairs_waiting": 0},
                               description=NO_ROWS)


def warehouse_export_result(con: duckdb.DuckDBPyConnection | None, batch_id: str) -> dg.AssetCheckResult:
    """export_result of a batch's rows in the warehouse (a read-only connection; None: no warehouse)."""
    n, problems = problems_in(con, warehouse_rows(batch_id)) if con is not None else (0, [])
    if not n:
        return _nothing_yet(waiting_in(con, batch_id) if con is not None else 0)
    return _result(n, problems)


def warehouse_empty_response_result(con: duckdb.DuckDBPyConnection | None, batch_id: str) -> dg.AssetCheckResult:
    """empty_response_result of a batch's rows in the warehouse, their text shown as the I/O manager loads it."""
    rows = warehouse_rows(batch_id)
    n = con.execute(rows + "SELECT count(*) FROM rows").fetchone()[0] if con is not None else 0
    if not n:
        return dg.AssetCheckResult(passed=True, severity=WARN, metadata={"rows": 0})
    return _empty_result(n, arrow_frame(con.execute(rows + EMPTY_SQL).to_arrow_table()))


@batch_check("preference_dataset", blocking=True)
def export_is_well_formed(context: dg.AssetCheckExecutionContext, warehouse_reader: WarehouseReader) -> dg.AssetCheckResult:
    """The training export is usable: prompt, chosen and rejected are text and the prompt is not
    empty; chosen differs from rejected; margins finite and >= 0 where present; one row per pair.
    Blocking with severity ERROR: a malformed export fails the run (the description says which
    rows) and blocks everything downstream, so it never passes as a good batch. An export that is
    merely unfinished is not malformed: with no row yet while pairs wait for people the check
    passes and says how many wait; with no row and nothing waiting (only ties) it warns.
    Checked in SQL on the batch's warehouse rows: their text is never loaded."""
    with read_only(warehouse_reader.database) as con:
        return warehouse_export_result(con, context.partition_key)


@batch_check("preference_dataset")
def export_responses_not_empty(context: dg.AssetCheckExecutionContext, warehouse_reader: WarehouseReader) -> dg.AssetCheckResult:
    """No training row pairs a response with an empty one. Such pairs come from existing
    completions where a model answered nothing (response_pairs keeps them, flagged). An empty
    `rejected` teaches "say something"; an empty `chosen` teaches the model to answer nothing.
    WARN with the pairs: drop them from the export or relabel them if that is not what you want.
    Checked in SQL on the batch's warehouse rows, like the export check."""
    with read_only(warehouse_reader.database) as con:
        return warehouse_empty_response_result(con, context.partition_key)
