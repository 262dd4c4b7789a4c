"""Every store and client an asset opens, as a Dagster resource, so tests inject them
(`dg.materialize(..., resources=...)`) and a team swaps a backend without touching an asset.

- `warehouse`: the DuckDB I/O manager that stores every per-batch table (prefpipe.defs.warehouse_io);
- `warehouse_reader`: short read-only reads of the same warehouse (other batches, history);
- `annotation_store`: the annotation app's operational store (a SQLite file, or PostgreSQL for a team);
- `batch_folders`: the batch input folders (prompts.jsonl, batch.json, imported labels, gold);
- `guidelines_folder`: the team's guidelines and rubric;
- `routing_settings`: the routing rules and labels per pair that routing, the queue and final labels share;
- `publish_folders`: where published datasets and HTML reports go;
- `llm`: an OpenAI-compatible endpoint with cache, retries, rate limits and a price table.

`build_resources()` binds them all to one data folder (PREFPIPE_DATA_DIR by default).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import dagster as dg
import pandas as pd
import pydantic

from prefpipe.annotate.store.location import STORE_ENV
from prefpipe.core import settings
from prefpipe.core.batches import BatchConfig, list_batches, load_batch_config, open_batches
from prefpipe.core.guidelines import Guidelines, load_guidelines
from prefpipe.core.routing import BUDGET_STRATEGIES, DEFAULT_BUDGET_STRATEGY, DEFAULT_LABELS_PER_PAIR, RoutingConfig
from prefpipe.core.warehouse import read_chunks, read_tables
from prefpipe.core.warehouse_target import WAREHOUSE_ENV, WarehouseTarget, parse_target
from prefpipe.defs.executors import executor_choice
from prefpipe.defs.run_config import dagster_config
from prefpipe.defs.warehouse_io import WarehouseIOManager
from prefpipe.llm.client import LLMClient, LLMSettings

if TYPE_CHECKING:
    from prefpipe.annotate.store import AnnotationStore


class WarehouseReader(dg.ConfigurableResource):
    """Read-only access to the warehouse beyond an asset's own inputs: other batches' rows (label
    drift, a reward model trained on history). Each read is one short connection that waits out a
    writer's lock."""

    database: str = pydantic.Field(description="The warehouse: a DuckDB file, or ducklake:postgresql://... (PREFPIPE_WAREHOUSE).")

    def read_tables(self, tables: tuple[str, ...], *, batch_id: str | None = None, columns: tuple[str, ...] | None = None,
                    text_in_arrow: bool = False) -> dict[str, pd.DataFrame]:
        return read_tables(tables, batch_id=batch_id, database=self.database, columns=columns, text_in_arrow=text_in_arrow)

    def read_chunks(self, table: str, *, batch_id: str, rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """One batch's rows of `table`, `rows` at a time (prefpipe.core.warehouse.read_chunks)."""
        return read_chunks(table, batch_id=batch_id, database=self.database, rows=rows)


class AnnotationStoreResource(dg.ConfigurableResource):
    """The annotation app's store: the queue people label from, gold keys, and their answers."""

    location: str = pydantic.Field(description=(
        "The store shared with `prefpipe annotate`: a SQLite file, or postgresql://USER@HOST:PORT/DB "
        "(from PREFPIPE_ANNOTATION_STORE; the password from PGPASSWORD)."))

    def exists(self) -> bool:
        """A SQLite file that is not there yet holds no answers; a PostgreSQL store is always opened."""
        from prefpipe.annotate.store import parse_location

        found = parse_location(self.location)
        return found.path is None or found.path.exists()

    @contextmanager
    def open(self) -> Iterator[AnnotationStore]:
        """One connection for the caller's short transactions, closed when the block ends."""
        from prefpipe.annotate.store import AnnotationStore

        with AnnotationStore(self.location) as store:
            yield store


class BatchFolders(dg.ConfigurableResource):
    """The batch folders under data/batches/: one folder per batch, its name the partition key."""

    root: str = pydantic.Field(description="The folder holding one sub-folder per batch.")

    def folder(self, batch_id: str) -> Path:
        return Path(self.root) / batch_id

    def config(self, batch_id: str) -> BatchConfig:
        """The batch's batch.json settings (defaults when there is none)."""
        return load_batch_config(self.folder(batch_id))

    def batch_ids(self) -> list[str]:
        return list_batches(Path(self.root))

    def open_batch_ids(self) -> list[str]:
        return open_batches(Path(self.root))


class GuidelinesFolder(dg.ConfigurableResource):
    """The team's guidelines.md and rubric.json; their content hash is the guideline version."""

    folder: str = pydantic.Field(description="The folder holding guidelines.md and rubric.json.")

    def load(self) -> Guidelines:
        return load_guidelines(Path(self.folder))


class PublishFolders(dg.ConfigurableResource):
    """Where the files people take away are written."""

    exports: str = pydantic.Field(description="Published datasets: <exports>/<batch>/train.parquet, train.jsonl, README.md.")
    reports: str = pydantic.Field(description="HTML reports: <reports>/<batch>.html.")


class RoutingSettings(dg.ConfigurableResource):
    """How a batch's pairs are routed and how many labels people give: one configuration that
    `routing`, `human_queue` and `final_labels` all read in a run, so the budget, the queue and the
    final labels can never disagree. Set it in the launchpad under `resources: routing_settings`."""

    accept_confidence: Optional[float] = pydantic.Field(None, description="Accept AI labels at this confidence or more (default: the rubric's ai_confidence_accept, 0.75).")
    spot_check_rate: Optional[float] = pydantic.Field(None, description="Share of accepted AI labels sent to a person anyway (default: the rubric's spot_check_rate, 0.05).")
    seed: int = pydantic.Field(0, description="Seed of the spot-check draw.")
    require_consistent: bool = pydantic.Field(True, description="Accept only verdicts consistent in both orders.")
    labels_per_pair: Optional[int] = pydantic.Field(
        None, description=f"People's labels a pair routed to them needs before it is final (experts give one); "
        f"default: the batch's batch.json labels_per_pair, else {DEFAULT_LABELS_PER_PAIR}. Set here, it overrides batch.json for the run.",
    )
    budget_strategy: str = pydantic.Field(DEFAULT_BUDGET_STRATEGY, description=f"Active-learning strategy that spends a human budget: {', '.join(BUDGET_STRATEGIES)}.")
    primary_judge: Optional[str] = pydantic.Field(None, description="Judge whose verdicts are routed and stand where accepted (default: the first in ai_labels).")

    def rules(self, guidelines: Guidelines, batch: BatchConfig) -> RoutingConfig:
        """The routing rules for one batch: thresholds not set here come from the rubric, the
        budget from batch.json, labels per pair from here, else batch.json, else the default."""
        per_pair = next((n for n in (self.labels_per_pair, batch.labels_per_pair) if n is not None), DEFAULT_LABELS_PER_PAIR)
        return RoutingConfig(
            accept_confidence=self.accept_confidence if self.accept_confidence is not None else guidelines.threshold("ai_confidence_accept", 0.75),
            spot_check_rate=self.spot_check_rate if self.spot_check_rate is not None else guidelines.threshold("spot_check_rate", 0.05),
            seed=self.seed,
            require_consistent=self.require_consistent,
            human_budget=batch.human_budget,
            labels_per_pair=per_pair,
            budget_strategy=self.budget_strategy,
        )


_LLMFields = dagster_config(LLMSettings, "LLMResourceFields", base=dg.ConfigurableResource)
"""LLMSettings' fields and descriptions, once: the resource never re-declares them."""


class LLMResource(_LLMFields):
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp) with cache, retries,
    rate limits and a price table. Unset base_url / api_key: $OPENAI_BASE_URL / $OPENAI_API_KEY.

    The client is opened on first use in a step and closed when the step's resources are torn
    down, so assets never manage its lifetime. Outside Dagster, `LLMResource(...).get_client()`
    returns a client the caller closes."""

    _client: LLMClient | None = pydantic.PrivateAttr(default=None)

    def settings(self) -> LLMSettings:
        return LLMSettings(**{name: getattr(self, name) for name in LLMSettings.model_fields})

    def get_client(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(self.settings())
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def build_resources(data_dir: Path | None = None) -> dict[str, object]:
    """Every resource bound to one data folder (default: PREFPIPE_DATA_DIR, else ./data)."""
    root = Path(data_dir).resolve() if data_dir is not None else settings.data_dir()
    warehouse = os.environ.get(WAREHOUSE_ENV) or str(root / settings.WAREHOUSE_FILE)  # a DuckDB file, or a lakehouse
    in_process = executor_choice(parse_target(warehouse)) == "in_process"
    return {
        "warehouse": WarehouseIOManager(database=warehouse, schema=settings.WAREHOUSE_SCHEMA, settle_on_teardown=in_process),
        "warehouse_reader": WarehouseReader(database=warehouse),
        "annotation_store": AnnotationStoreResource(location=_annotation_store(root)),
        "batch_folders": BatchFolders(root=str(root / "batches")),
        "guidelines_folder": GuidelinesFolder(folder=str(root / "guidelines")),
        "publish_folders": PublishFolders(exports=str(root / "exports"), reports=str(root / "reports")),
        "routing_settings": RoutingSettings(),
        "llm": LLMResource(),
    }


def _annotation_store(root: Path) -> str:
    """PREFPIPE_ANNOTATION_STORE as an EnvVar (the UI shows the variable's name, never a URL that
    may hold a password), else the SQLite file under the data folder."""
    if os.environ.get(STORE_ENV):
        return dg.EnvVar(STORE_ENV)  # type: ignore[return-value] - resolved by Dagster when the run starts
    return str(root / settings.ANNOTATION_STORE_FILE)


def warehouse_of(resources: dict[str, object]) -> WarehouseTarget:
    """The warehouse the resources write to."""
    return parse_target(resources["warehouse"].database)  # type: ignore[attr-defined]
