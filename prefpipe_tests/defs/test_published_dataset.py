"""published_dataset in real runs: every publish with rows is a version, the same rows again are
not, an earlier version exports byte for byte after a later one changed the files, nothing is
published while pairs wait for people, and the card tells what happened to the batch."""

from __future__ import annotations

import json

import dagster as dg

from prefpipe.cli import main
from prefpipe.cli.pipeline import step_failures
from prefpipe.core import dataset_versions as dv
from prefpipe_tests.defs.conftest import make_batch, materialize, write_jsonl


def published(result: dg.ExecuteInProcessResult) -> dict:
    """published_dataset's metadata in this run, as plain values."""
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("published_dataset")]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def run(batch_id: str, instance: dg.DagsterInstance) -> dict:
    result = materialize(batch_id, instance)
    assert result.success, step_failures(result)
    return published(result)


def test_each_publish_is_a_version_and_an_earlier_one_exports_exactly(project_data, tmp_path, capsys):
    instance = dg.DagsterInstance.ephemeral()
    out = project_data / "exports" / "mini"
    first = run("mini", instance)
    assert first["new_version"] is True and first["rows"] == 5  # six pairs, q2 a tie
    v1 = dv.history(out)[0]
    assert first["version"] == v1.version and v1.rows == 5 and v1.change is None and v1.guideline_versions == ("imported",)
    published_then = {name: (out / name).read_bytes() for name in dv.DATA_FILES}
    card = (out / "README.md").read_text()
    assert "prefpipe asked no AI judge: 6 verdicts of ext-judge were imported from the batch folder" in card
    assert "in one order only" in card and "LLM judge labelled every pair" not in card and "both orders" not in card
    assert "People were asked for 3 labels a pair" in card and f"Version {v1.version}" in card

    again = run("mini", instance)
    assert again["new_version"] is False and again["version"] == v1.version and len(dv.history(out)) == 1
    assert "no new version recorded" in again["published"]

    folder = project_data / "batches" / "mini"
    labels = [json.loads(line) for line in (folder / "annotations.jsonl").read_text().splitlines()]
    write_jsonl(folder / "annotations.jsonl", [{**r, "label": 2} if r["pair_id"] == "q0:0" else r for r in labels])  # A>B -> B>A
    later = run("mini", instance)
    v2 = dv.history(out)[-1]
    assert later["new_version"] is True and later["version"] == v2.version != v1.version
    assert (later["pairs_added"], later["pairs_removed"], later["labels_changed"]) == (0, 0, 1)
    assert v2.change.previous == v1.version and f"since version {v1.version}" in (out / "README.md").read_text()
    assert (out / "train.parquet").read_bytes() != published_then["train.parquet"]

    assert main(["datasets", "history", "--batch", "mini", "--json"]) == 0
    assert [r["version"] for r in json.loads(capsys.readouterr().out)] == [v2.version, v1.version]  # newest first
    assert main(["datasets", "export", "--batch", "mini", "--version", v1.version, "--out", str(tmp_path / "v1")]) == 0
    for name, data in published_then.items():
        assert (tmp_path / "v1" / name).read_bytes() == data


def test_nothing_is_published_while_pairs_wait_for_people(project_data):
    """A batch whose every pair waits for people runs green; its files stay as the last version left
    them and the report, its progress report, says why nothing was published."""
    instance = dg.DagsterInstance.ephemeral()
    out = project_data / "exports" / "mini"
    run("mini", instance)
    (v1,) = dv.history(out)
    before = {name: (out / name).read_bytes() for name in (*dv.DATA_FILES, "README.md")}

    folder = project_data / "batches" / "mini"
    (folder / "annotations.jsonl").unlink()
    (folder / "ai_labels.jsonl").unlink()
    (folder / "batch.json").write_text(json.dumps({**json.loads((folder / "batch.json").read_text()), "judge": "none"}))
    waiting = run("mini", instance)
    said = f"Nothing published: no pair is complete yet: 6 waiting for people; the files of version {v1.version}"
    assert waiting["rows"] == 0 and waiting["pairs_waiting"] == 6 and waiting["published"].startswith(said)
    assert "new_version" not in waiting and dv.history(out) == [v1]
    assert {name: (out / name).read_bytes() for name in before} == before
    page = (project_data / "reports" / "mini.html").read_text()
    assert said in page and 'No AI judge (batch.json says &quot;judge&quot;: &quot;none&quot;).' in page

    make_batch(project_data, "fresh")
    fresh = project_data / "batches" / "fresh"
    (fresh / "annotations.jsonl").unlink()
    (fresh / "ai_labels.jsonl").unlink()
    (fresh / "batch.json").write_text(json.dumps({"judge": "none"}))
    assert run("fresh", instance)["published"] == "Nothing published: no pair is complete yet: 6 waiting for people; no earlier files."
    assert not (project_data / "exports" / "fresh").exists() and (project_data / "reports" / "fresh.html").is_file()
