"""`prefpipe datasets history` and `export` over versions published into the data folder
(the real-run path, with an export after a later publish, is in prefpipe_tests/defs/test_published_dataset.py)."""

from __future__ import annotations

from prefpipe.cli import main
from prefpipe.core import dataset_versions as dv
from prefpipe_tests.core.test_dataset_versions import publish, rows


def test_history_lists_versions_newest_first_with_their_changes(data_dir, capsys):
    out = data_dir / "exports" / "b"
    assert main(["datasets", "history", "--batch", "b"]) == 0
    assert "no published version" in capsys.readouterr().out
    a = publish(out, rows(), "run-1", "2026-01-01T00:00:00+00:00").version
    b = publish(out, rows(10, flip=(0,)), "run-2", "2026-01-02T00:00:00+00:00").version
    assert main(["datasets", "history", "--batch", "b"]) == 0
    text = capsys.readouterr().out
    assert text.index(b.version) < text.index(a.version) and "2 version(s), newest first" in text
    assert f"+2 -0 pairs, 1 label(s) changed since {a.version}" in text and "first version" in text
    assert "run run-2; guideline g1; judge prompt none" in text


def test_export_refuses_what_it_cannot_write_exactly(data_dir, tmp_path, capsys):
    out = data_dir / "exports" / "b"
    v = publish(out, rows(), "run-1", "t1").version
    assert main(["datasets", "export", "--batch", "b", "--version", "0123abcd", "--out", str(tmp_path / "x")]) == 1
    assert f"no version '0123abcd' of the dataset in {out} (known: {v.version})" in capsys.readouterr().err
    assert main(["datasets", "export", "--batch", "../b", "--version", v.version, "--out", str(tmp_path / "x")]) == 2
    assert "is not a batch id" in capsys.readouterr().err
    (dv.versions_dir(out) / v.version / "train.parquet").unlink()
    assert main(["datasets", "export", "--batch", "b", "--version", v.version, "--out", str(tmp_path / "x")]) == 1
    assert "is gone; it cannot be exported again" in capsys.readouterr().err and not (tmp_path / "x").exists()
