"""Where prefpipe keeps its files.

Everything lives under one data folder, PREFPIPE_DATA_DIR (default ./data), so a test or a user can
point the whole project at another folder by setting one variable. Paths are resolved when asked
for, never at import time, so a changed environment variable takes effect.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "PREFPIPE_DATA_DIR"
WAREHOUSE_FILE = "warehouse.duckdb"
ANNOTATION_STORE_FILE = "annotations.sqlite3"
WAREHOUSE_SCHEMA = "main"
"""DuckDB's default schema, so `SELECT * FROM final_labels` works in any DuckDB client."""


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


def batches_dir() -> Path:
    return data_dir() / "batches"


def batch_dir(batch_id: str) -> Path:
    return batches_dir() / batch_id


def guidelines_dir() -> Path:
    return data_dir() / "guidelines"


def warehouse_path() -> Path:
    """The DuckDB warehouse: one table per asset, one writer at a time."""
    return data_dir() / WAREHOUSE_FILE


def annotation_store_path() -> Path:
    """The operational SQLite store shared by the annotation app and the pipeline."""
    return data_dir() / ANNOTATION_STORE_FILE


def llm_cache_path() -> Path:
    """Persistent cache of LLM answers: a rerun never pays twice for the same call."""
    return data_dir() / "llm_cache.sqlite3"


def reports_dir() -> Path:
    return data_dir() / "reports"


def exports_dir() -> Path:
    return data_dir() / "exports"
