"""One routing configuration for the whole run: `routing`, `human_queue` and `final_labels` read the
same `routing_settings` resource, so the budget and the queue can never disagree on how many
labels a pair wants."""

from __future__ import annotations

import json

import dagster as dg

from prefpipe.core.routing import DEFAULT_LABELS_PER_PAIR
from prefpipe.core.warehouse import read_table
from prefpipe.defs.resources import RoutingSettings
from prefpipe_tests.defs.conftest import make_batch, materialize, project_data  # noqa: F401 (project_data: fixture)


def test_labels_per_pair_is_honoured_by_the_budget_and_the_queue(project_data):
    folder = make_batch(project_data, "budgeted", n=12)
    (folder / "annotations.jsonl").unlink()  # nobody has labelled yet: the queue wants every label
    config = json.loads((folder / "batch.json").read_text())
    (folder / "batch.json").write_text(json.dumps({**config, "human_budget": 8}))
    with dg.instance_for_test() as instance:
        result = materialize("budgeted", instance, resources={"routing_settings": RoutingSettings(labels_per_pair=2, spot_check_rate=0.0)})
        assert result.success
    routing = read_table("routing", batch_id="budgeted")
    queue = read_table("human_queue", batch_id="budgeted")
    people = routing[routing["route"] == "human"]
    assert len(people) == 8 // 2  # a budget of 8 labels at 2 labels a pair buys 4 pairs
    assert (routing["route"] == "over_budget").sum() > 0
    enqueued = queue[queue["enqueued"].astype(bool)]
    assert sorted(enqueued["pair_id"]) == sorted(people["pair_id"])
    assert set(enqueued["labels_wanted"]) == {2}
    metadata = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
                for e in result.get_asset_materialization_events()}
    assert metadata["routing"]["labels_per_pair"].value == 2 and metadata["human_queue"]["labels_per_pair"].value == 2


def test_the_default_is_three_labels_a_pair_everywhere(project_data):
    folder = make_batch(project_data, "plain", n=6)
    (folder / "annotations.jsonl").unlink()
    with dg.instance_for_test() as instance:
        assert materialize("plain", instance).success
    queue = read_table("human_queue", batch_id="plain")
    wanted = queue.loc[queue["enqueued"].astype(bool) & (queue["route"] != "expert"), "labels_wanted"]
    assert len(wanted) and set(wanted) == {DEFAULT_LABELS_PER_PAIR} == {3}
    assert RoutingSettings().labels_per_pair is None  # unset: batch.json's, else the default


def _write_config(folder, **settings) -> None:
    config = json.loads((folder / "batch.json").read_text())
    (folder / "batch.json").write_text(json.dumps({**config, **settings}))


def test_batch_json_sets_labels_per_pair_for_routing_the_queue_and_final_labels(project_data):
    """batch.json labels_per_pair 2: routing records it, the queue asks for it, and a pair with one
    imported label is waiting (no final label) while a pair with two is final."""
    folder = make_batch(project_data, "two", n=6)
    _write_config(folder, judge="none", labels_per_pair=2)
    (folder / "ai_labels.jsonl").unlink()
    lines = [{"pair_id": "q0:0", "annotator_id": "ann0", "label": "1"}, {"pair_id": "q0:0", "annotator_id": "ann1", "label": "1"},
             {"pair_id": "q1:0", "annotator_id": "ann0", "label": "2"}]
    (folder / "annotations.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with dg.instance_for_test() as instance:
        result = materialize("two", instance)
        assert result.success
        metadata = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    routing = read_table("routing", batch_id="two")
    assert set(routing["route"]) == {"human"} and set(routing["labels_wanted"]) == {2}
    queue = read_table("human_queue", batch_id="two").set_index("pair_id")
    assert queue.loc["q0:0", "labels_wanted"] == 0 and queue.loc["q1:0", "labels_wanted"] == 1 and queue.loc["q2:0", "labels_wanted"] == 2
    final = read_table("final_labels", batch_id="two")
    assert list(final["pair_id"]) == ["q0:0"] and list(final["n_labels"]) == [2]
    assert metadata["final_labels"]["pairs_waiting"].value == 5
    assert metadata["routing"]["labels_per_pair"].value == 2


def test_the_run_config_overrides_batch_json(project_data):
    folder = make_batch(project_data, "over", n=4)
    _write_config(folder, labels_per_pair=2)
    with dg.instance_for_test() as instance:
        assert materialize("over", instance, resources={"routing_settings": RoutingSettings(labels_per_pair=4, spot_check_rate=0.0)}).success
    routing = read_table("routing", batch_id="over")
    people = routing[routing["route"] == "human"]
    assert len(people) and set(people["labels_wanted"]) == {4}
    assert routing.loc[routing["route"] == "accepted", "labels_wanted"].isna().all()
