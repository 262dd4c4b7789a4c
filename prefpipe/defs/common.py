"""What the asset and check files share: the per-batch table arguments, the batch_id column,
metadata helpers and the partitioned check decorator. No pipeline logic lives here."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from prefpipe.core import schemas
from prefpipe.core.guidelines import Guidelines
from prefpipe.defs.partitions import batches

BATCH_OUT = dict(metadata={"partition_expr": "batch_id"}, io_manager_key="warehouse")
"""Arguments of every per-batch table: stored in the warehouse, one batch_id's rows replaced at a time."""
BATCH_ASSET = dict(partitions_def=batches, **BATCH_OUT)
"""Arguments every per-batch asset shares: partitioned by batch, stored in the warehouse by batch_id."""

WARN = dg.AssetCheckSeverity.WARN


def with_llm_calls(table: str, calls: str, calls_description: str) -> dict[str, dg.AssetOut]:
    """The outs of a step that calls a model: its table (group `labelling`) and the priced table of
    every call it made (group `costs`), both stored per batch."""
    return {
        table: dg.AssetOut(**BATCH_OUT, group_name="labelling"),
        calls: dg.AssetOut(**BATCH_OUT, group_name="costs", description=calls_description),
    }

CHECK_THRESHOLDS: dict[str, float] = {
    "min_krippendorff_alpha": 0.667,
    "max_unparsed_rate": 0.10,
    "max_position_inconsistent_rate": 0.20,
    "max_label_drift_tvd": 0.15,
    "max_spot_check_disagreement": 0.15,
}
"""rubric.json `thresholds` names the asset checks read, and their defaults."""


def check_threshold(guidelines: Guidelines, name: str) -> float:
    return guidelines.threshold(name, CHECK_THRESHOLDS[name])


def with_batch(df: pd.DataFrame, schema: dict[str, str], batch_id: str, *, table: str) -> pd.DataFrame:
    """Conform to the table's columns and put batch_id first (the warehouse's partition column)."""
    out = schemas.conform(df, schema, name=table)
    same = pa.array([batch_id], pa.large_string()).take(np.zeros(len(out), dtype=np.int64))  # one value, no Python str per row
    out.insert(0, "batch_id", pd.Series(pd.arrays.ArrowStringArray(same), index=out.index))
    return out


PAIR_ID_COLUMNS = ("batch_id", "pair_id", "prompt_id", "model_a", "model_b", "strategy", "dropped", "drop_reason")
PAIR_IDS = dg.AssetIn("response_pairs", metadata={"columns": list(PAIR_ID_COLUMNS)})
"""response_pairs without its texts, for the stages that decide on ids and flags: at a million pairs
the prompts and responses are most of the table, and most stages never look at them."""


def pair_texts(reader, batch_id: str, pairs: pd.DataFrame) -> pd.DataFrame:
    """`pairs` (ids and flags) with their prompt, responses and strategy_params, read from the
    warehouse when a stage needs them after all (a judge to ask, texts to rank by)."""
    texts = reader.read_tables(("response_pairs",), batch_id=batch_id, columns=("pair_id", "prompt", "response_a", "response_b", "strategy_params"),
                               text_in_arrow=True)
    return pairs.merge(drop_batch(texts["response_pairs"]), on="pair_id", how="left", validate="one_to_one")


def drop_batch(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["batch_id"], errors="ignore")


def batch_check(asset: str, **kwargs) -> Callable:
    """@dg.asset_check partitioned by batch, like every per-batch asset; it runs in the same run as
    its asset (`partitions_def` on checks is a preview feature of Dagster 1.13)."""

    def wrap(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(asset=asset, partitions_def=batches, **kwargs)(fn)

    return wrap


def md_table(df: pd.DataFrame, *, max_rows: int = 30, floatfmt: str = ".4g") -> dg.MetadataValue:
    """A markdown table for the asset's metadata panel."""
    from prefpipe.reports.markdown import table_md

    return dg.MetadataValue.md(table_md(df, floatfmt=floatfmt, max_rows=max_rows) if len(df) else "_no rows_")


def md_image(png: bytes, alt: str) -> dg.MetadataValue:
    """A plot for the asset's metadata panel (an inline PNG)."""
    from prefpipe.reports.markdown import image_md

    return dg.MetadataValue.md(image_md(png, alt))


def check_md(df: pd.DataFrame) -> dg.MetadataValue:
    """A markdown table for an asset check's metadata."""
    from prefpipe.reports.markdown import table_md

    return dg.MetadataValue.md(table_md(df, floatfmt=".3f"))


def history_reward_model(reader, batch_id: str):
    """The reward model trained on every other batch's final labels in the warehouse (read through
    the `warehouse_reader` resource), or None when they hold too few directional labels."""
    from prefpipe.learning.history import reward_model_from_history

    history = reader.read_tables(("response_pairs", "final_labels"))
    return reward_model_from_history(history["response_pairs"], history["final_labels"], exclude_batch=batch_id)


def user_errors(fn: Callable) -> Callable:
    """Wrap an asset or check body so a PrefpipeError (bad input, a wrong setting) fails the step as
    a `dg.Failure` whose description is the user's message, not as a traceback to dig through."""
    import functools
    import inspect

    from prefpipe.errors import PrefpipeError

    def failure(exc: PrefpipeError) -> dg.Failure:
        return dg.Failure(description=str(exc), metadata={"error": type(exc).__name__})

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except PrefpipeError as exc:
                raise failure(exc) from exc

        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PrefpipeError as exc:
            raise failure(exc) from exc

    return plain
