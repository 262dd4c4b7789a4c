"""Dataset versions: a content hash that ignores row order, what changed between two publishes,
and an earlier version written again byte for byte after the published files were replaced."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefpipe.core import dataset_versions as dv
from prefpipe.exports.trl import trl_table, write_trl


def rows(n: int = 8, *, flip: tuple[int, ...] = (), seed: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({
        "pair_id": [f"q{i}:0" for i in range(n)], "prompt": [f"Prompt {i} \u00e9\n\"quoted\"" for i in range(n)],
        "chosen": [f"good {i}" for i in range(n)], "rejected": [f"bad {i}" for i in range(n)],
        "label": ["B>A" if i in flip else "A>B" for i in range(n)], "margin": [1.0 - i / 10 for i in range(n)],
        "label_source": "human:majority", "guideline_version": "g1",
    })
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True) if seed is not None else frame


def publish(export_dir, frame: pd.DataFrame, run_id: str, when: str) -> dv.Publication:
    table = dv.canonical_order(trl_table(frame, batch_id="b"))
    files = write_trl(table, export_dir)
    publication = dv.next_version(export_dir, files, batch_id="b", run_id=run_id, published_at=when, rows=table.num_rows,
                                  guideline_versions=dv.versions_in(table, "guideline_version"),
                                  judge_prompt_versions=dv.versions_in(table, "judge_prompt_version"))
    card = export_dir / dv.CARD_FILE
    card.write_text(f"card of {run_id}\n", encoding="utf-8")
    if publication.new:
        dv.record_version(export_dir, publication, files, card)
    return publication


def test_the_same_rows_in_any_order_have_one_hash(tmp_path):
    hashes = set()
    for seed in (None, 1, 2):
        files = write_trl(dv.canonical_order(trl_table(rows(seed=seed), batch_id="b")), tmp_path / str(seed))
        hashes.add(dv.file_sha256(files["jsonl"]))
        assert pd.read_parquet(files["parquet"])["pair_id"].is_monotonic_increasing
    assert len(hashes) == 1
    changed = write_trl(dv.canonical_order(trl_table(rows(flip=(3,)), batch_id="b")), tmp_path / "flip")
    assert dv.file_sha256(changed["jsonl"]) not in hashes


def test_versions_record_what_changed_and_export_the_old_files_exactly(tmp_path):
    out = tmp_path / "exports" / "b"
    first = publish(out, rows(), "run-1", "2026-01-01T00:00:00+00:00")
    assert first.new and first.previous is None and first.version.change is None and first.version.previous is None
    old_bytes = {name: (out / name).read_bytes() for name in dv.DATA_FILES}

    again = publish(out, rows(seed=5), "run-2", "2026-01-02T00:00:00+00:00")  # the same rows, computed in another order
    assert not again.new and again.previous.version == first.version.version and len(dv.history(out)) == 1

    frame = rows(10, flip=(1, 2))  # q8, q9 added; q1, q2 relabelled
    frame = frame[frame["pair_id"] != "q5:0"]  # q5 removed
    frame.loc[frame["pair_id"] == "q6:0", "margin"] = 0.05  # q6 otherwise changed
    later = publish(out, frame, "run-3", "2026-01-03T00:00:00+00:00")
    assert later.new and later.version.change == dv.DatasetChange(first.version.version, added=2, removed=1, labels_changed=2, otherwise_changed=1)
    assert later.version.previous == first.version.version and later.version.rows == 9 and later.version.guideline_versions == ("g1",)
    assert [v.version for v in dv.history(out)] == [first.version.version, later.version.version]
    assert (out / "train.parquet").read_bytes() != old_bytes["train.parquet"]

    found, written = dv.export_version(out, first.version.version[:6], tmp_path / "again")
    assert found == dv.history(out)[0] and sorted(p.name for p in written) == ["README.md", "train.jsonl", "train.parquet"]
    for name, data in old_bytes.items():
        assert (tmp_path / "again" / name).read_bytes() == data
    assert (tmp_path / "again" / "README.md").read_text() == "card of run-1\n"  # the card published with it, not the latest


def test_a_version_whose_files_changed_is_not_exported(tmp_path):
    out = tmp_path / "b"
    v = publish(out, rows(), "run-1", "2026-01-01T00:00:00+00:00").version
    kept = dv.versions_dir(out) / v.version / "train.jsonl"
    kept.chmod(0o644)
    kept.write_bytes(kept.read_bytes() + b"{}\n")  # written in place: the published file is the same inode
    with pytest.raises(dv.DatasetVersionError, match="no longer match"):
        dv.export_version(out, v.version, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_version_is_named_by_a_unique_prefix(tmp_path):
    out = tmp_path / "b"
    a = publish(out, rows(), "run-1", "t1").version
    b = publish(out, rows(flip=(0,)), "run-2", "t2").version
    assert dv.find_version(out, b.version[:4].upper()) == b and dv.find_version(out, a.content_hash) == a
    with pytest.raises(dv.DatasetVersionError, match="no version 'ffff"):
        dv.find_version(out, "ffff" if not a.version.startswith("ffff") and not b.version.startswith("ffff") else "0000")
    with pytest.raises(dv.DatasetVersionError, match="no version"):
        dv.find_version(out, a.version[:3])  # too short to name one
    history = out / dv.VERSIONS_DIR / dv.HISTORY_FILE
    history.write_text(history.read_text() + "not json\n")
    with pytest.raises(dv.DatasetVersionError, match=r"history.jsonl, line 3"):
        dv.history(out)


def test_a_version_record_reads_back_as_it_was_written(tmp_path):
    v = publish(tmp_path / "b", rows(), "run-1", "t1").version
    assert dv.DatasetVersion.from_record(json.loads(json.dumps(v.record()))) == v


def test_changes_at_scale_are_one_scan_each(tmp_path):
    """10,000 pairs, a tenth relabelled: counted in DuckDB, no row seen by Python."""
    n = 10_000
    base = pd.DataFrame({"pair_id": [f"p{i:05d}" for i in range(n)], "prompt": "p", "chosen": "c", "rejected": "r",
                         "label": "A>B", "margin": np.ones(n), "label_source": "ai:ai", "guideline_version": "g"})
    old = write_trl(trl_table(base, batch_id="b"), tmp_path / "old")
    new = write_trl(trl_table(base.assign(label=np.where(np.arange(n) % 10 == 0, "B>A", "A>B")), batch_id="b"), tmp_path / "new")
    assert dv.changes(new["parquet"], old["parquet"], "v") == dv.DatasetChange("v", 0, 0, 1_000, 0)
