"""`prefpipe export` / `prefpipe import` against a real DuckDB warehouse file and batch folder, and
the written annotations read back by the pipeline's own importer (prefpipe.core.ingest)."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from prefpipe.core import schemas, settings
from prefpipe.core.batches import BatchConfig
from prefpipe.cli import main
from prefpipe.core.ingest import annotation_files, import_human_annotations


def _preference_rows() -> pd.DataFrame:
    rows = pd.DataFrame(
        {"pair_id": ["p1:0", "p2:0"], "prompt": ["Say hi", "Quote"], "chosen": ["Hi!", "this and that"],
         "rejected": ["Hello there, friend.", "“this” & <that>"], "label": ["A>B", "B>A"], "margin": [0.75, 0.5],
         "label_source": ["human:majority", "human:majority"], "guideline_version": ["g2", "g2"]}
    )
    return schemas.conform(rows, schemas.PREFERENCE_DATASET)


@pytest.fixture
def warehouse(data_dir, small_batch):
    """A warehouse with batch b1 (the small batch) and rows of another batch that must not leak."""
    tables = dict(small_batch, preference_dataset=_preference_rows(), agreement_report=pd.DataFrame(
        {"metric": ["krippendorff_alpha"], "scope": ["batch"], "value": [0.7], "ci_low": [0.6], "ci_high": [0.8],
         "n_items": [3], "band": ["substantial"], "interpretation": ["usable"]}))
    with duckdb.connect(str(settings.warehouse_path())) as con:
        for name, frame in tables.items():
            rows = pd.concat([frame.assign(batch_id="b1"), frame.assign(batch_id="other")], ignore_index=True)
            con.register("rows", rows)
            con.execute(f'CREATE TABLE main."{name}" AS SELECT * FROM rows')
            con.unregister("rows")
    (settings.batch_dir("b1")).mkdir(parents=True)
    return tables


def _labelled(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = df[df["label"].notna()][columns].astype("object")
    if "dimensions" in out:
        out["dimensions"] = out["dimensions"].map(json.loads)
    return out.sort_values(["pair_id", "annotator_id"]).reset_index(drop=True)


def test_export_trl_reads_one_batch_and_writes_files_and_card(warehouse, tmp_path, capsys):
    out = tmp_path / "trl"
    assert main(["export", "--batch", "b1", "--format", "trl", "--out", str(out)]) == 0
    frame = pd.read_parquet(out / "train.parquet")
    assert frame["pair_id"].tolist() == ["p1:0", "p2:0"] and set(frame["batch_id"]) == {"b1"}
    assert "krippendorff_alpha" in (out / "README.md").read_text(encoding="utf-8")
    assert "2 preference pairs" in capsys.readouterr().out
    # the connection was read-only and is closed: a writer can open the warehouse at once
    with duckdb.connect(str(settings.warehouse_path())) as con:
        con.execute("CREATE TABLE main.after_export AS SELECT 1 AS x")


@pytest.mark.parametrize(
    ("fmt", "columns"),
    [
        ("label-studio", ["pair_id", "annotator_id", "label", "dimensions", "duration_s", "created_at"]),
        ("argilla", ["pair_id", "annotator_id", "label", "dimensions"]),
    ],
)
def test_export_then_import_reaches_the_pipeline_importer(warehouse, tmp_path, fmt, columns):
    exported = tmp_path / f"b1.{fmt}.json"
    assert main(["export", "--batch", "b1", "--format", fmt, "--out", str(exported)]) == 0
    assert main(["import", "--batch", "b1", "--format", fmt, str(exported)]) == 0
    files = annotation_files(settings.batch_dir("b1"))
    assert [f.name for f in files] == [f"{fmt}-b1.{fmt}.jsonl"]
    imported = import_human_annotations(files, BatchConfig(), known_pairs={"p1:0", "p2:0", "p3:0"})
    pd.testing.assert_frame_equal(_labelled(imported, columns), _labelled(warehouse["human_annotations"], columns))
    # importing the same file again replaces its earlier import instead of duplicating it
    assert main(["import", "--batch", "b1", "--format", fmt, str(exported)]) == 0
    assert len(annotation_files(settings.batch_dir("b1"))) == 1


def test_label_studio_export_writes_the_labelling_interface(warehouse, tmp_path):
    exported = tmp_path / "tasks.json"
    assert main(["export", "--batch", "b1", "--format", "label-studio", "--out", str(exported)]) == 0
    config = (tmp_path / "tasks.label_config.xml").read_text(encoding="utf-8")
    assert 'name="helpfulness"' in config and 'name="preference"' in config
    assert len(json.loads(exported.read_text(encoding="utf-8"))) == 3


def test_a_bad_import_writes_nothing(warehouse, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"data": {"pair_id": "p1:0"}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "preference", "type": "choices", "value": {"choices": ["meh"]}}]}]}]), encoding="utf-8")
    assert main(["import", "--batch", "b1", "--format", "label-studio", str(bad)]) == 1
    assert "nothing written" in capsys.readouterr().err and annotation_files(settings.batch_dir("b1")) == []


def test_export_without_a_warehouse_says_what_to_do(data_dir, capsys):
    assert main(["export", "--batch", "b1", "--format", "argilla"]) == 2
    assert "prefpipe run --batch b1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["import", "export"])
@pytest.mark.parametrize("batch_id", ["../../outside", "..", "b1/../../x", "/tmp/abs", ".hidden"])
def test_a_batch_id_that_is_a_path_is_refused_before_anything_is_read_or_written(data_dir, tmp_path, capsys, command, batch_id):
    source = tmp_path / "export.json"
    source.write_text("[]", encoding="utf-8")
    (data_dir / "batches" / "b1").mkdir(parents=True)
    args = ["--format", "label-studio", str(source)] if command == "import" else ["--format", "pairs"]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main([command, "--batch", batch_id, *args]) == 2
    assert f"--batch {batch_id!r} is not a batch id" in capsys.readouterr().err
    assert sorted(p for p in tmp_path.rglob("*")) == before
