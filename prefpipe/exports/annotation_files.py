"""Human annotations handed to the pipeline as files.

Annotations made in another tool enter prefpipe the way every outside label does: as a JSONL file
in the batch folder, `data/batches/<batch_id>/annotations/<name>.jsonl`, which the pipeline reads
(prefpipe.core.ingest) with the same checks as any other import. Writing a file, rather than the
warehouse, keeps imports safe while Dagster runs hold the warehouse, and leaves the user a file to
inspect, fix or delete.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from prefpipe.core import settings
from prefpipe.core.files import atomic_write, plain_records
from prefpipe.core.ingest import ANNOTATIONS_DIR  # the folder the pipeline reads them from


def annotation_records(annotations: pd.DataFrame) -> list[dict]:
    """human_annotations rows -> the import convention's objects (pair_id, annotator_id, label,
    role, dimensions, duration_s, created_at, guideline_version); unknown optional fields are left out."""
    records = []
    for row in plain_records(annotations):
        record = {"pair_id": row["pair_id"], "annotator_id": row["annotator_id"], "label": row["label"]}
        if row.get("role"):
            record["role"] = row["role"]
        dims = json.loads(row["dimensions"]) if row.get("dimensions") else {}
        if dims:
            record["dimensions"] = dims
        for name in ("duration_s", "created_at", "guideline_version"):
            if row.get(name) is not None:
                record[name] = row[name]
        records.append(record)
    return records


def import_file_name(fmt: str, source: Path | str) -> str:
    """`<format>-<source stem>.jsonl`: importing the same file again replaces its earlier import."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source).stem).strip("._") or "import"
    return f"{fmt}-{stem}.jsonl"


def write_annotations_jsonl(annotations: pd.DataFrame, path: Path) -> Path:
    """Write the rows as JSONL atomically (temporary file, then rename)."""
    lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in annotation_records(annotations))
    return atomic_write(path, lambda tmp: tmp.write_text(lines, encoding="utf-8"))


def batch_annotations_path(batch_id: str, file_name: str) -> Path:
    return settings.batch_dir(batch_id) / ANNOTATIONS_DIR / file_name
