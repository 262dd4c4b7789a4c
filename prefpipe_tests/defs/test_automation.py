"""The batch sensor and the nightly schedule, evaluated against a real (ephemeral) instance."""

import datetime as dt
import json

import dagster as dg

from prefpipe.defs.automation import new_batch_sensor, nightly_open_batches
from prefpipe.defs.resources import build_resources


def folders() -> dict:
    """The batch folders resource of the test's data folder, as the definitions bind it."""
    return {"batch_folders": build_resources()["batch_folders"]}


def make_batch(data_dir, name, closed=False):
    folder = data_dir / "batches" / name
    folder.mkdir(parents=True)
    (folder / "prompts.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    if closed:
        (folder / "batch.json").write_text('{"closed": true}')


def test_sensor_registers_new_batch_folders_once(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    assert isinstance(new_batch_sensor(dg.build_sensor_context(instance=instance, resources=folders())), dg.SkipReason)
    make_batch(data_dir, "b1")
    make_batch(data_dir, "b2")
    (data_dir / "batches" / "no-prompts-yet").mkdir()
    result = new_batch_sensor(dg.build_sensor_context(instance=instance, resources=folders()))
    assert [r.partition_key for r in result.run_requests] == ["b1", "b2"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["b1", "b2"]
    instance.add_dynamic_partitions("batches", ["b1", "b2"])
    assert isinstance(new_batch_sensor(dg.build_sensor_context(instance=instance, resources=folders())), dg.SkipReason)
    make_batch(data_dir, "b3")
    result = new_batch_sensor(dg.build_sensor_context(instance=instance, resources=folders()))
    assert [r.partition_key for r in result.run_requests] == ["b3"]


def test_nightly_schedule_reruns_open_registered_batches(data_dir):
    make_batch(data_dir, "open1")
    make_batch(data_dir, "done", closed=True)
    make_batch(data_dir, "unregistered")
    when = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.timezone.utc)
    with dg.instance_for_test() as instance:  # schedules need a persistent instance
        instance.add_dynamic_partitions("batches", ["open1", "done"])
        requests = nightly_open_batches(dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=folders()))
    assert [(r.partition_key, r.run_key) for r in requests] == [("open1", "nightly:2026-11-27:open1")]


def test_sensor_and_schedule_are_on_by_default():
    assert new_batch_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert nightly_open_batches.default_status == dg.DefaultScheduleStatus.RUNNING
