"""One routing configuration for the whole run: `routing`, `human_queue` and `final_labels` read the
same `routing_settings` resource, so the budget and the queue can never disagree on how many
labels a pair wants."""

from __future__ import annotations

import json

import dagster as dg

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
    assert len(wanted) and set(wanted) == {RoutingSettings().labels_per_pair} == {3}
