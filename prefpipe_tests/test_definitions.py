"""A snapshot of what the code location defines, written before the layout changed (issue 11):
asset keys, check keys, jobs, schedules, sensors, resource keys, and each asset's group and
partitions. A refactor that renames, drops or regroups any of them fails here. (Issue 12 added
the sensors `runs_whose_process_died` and `settle_finished_runs`; the snapshot passed unchanged through issue 11's layout.)"""

from __future__ import annotations

import dagster as dg

from prefpipe.definitions import build_definitions

ASSETS = {
    # key: (group, partitioned by batch)
    "guidelines": ("inputs", False),
    "prompts": ("inputs", True),
    "response_pairs": ("labelling", True),
    "generation_calls": ("costs", True),
    "ai_labels": ("labelling", True),
    "judge_calls": ("costs", True),
    "routing": ("labelling", True),
    "human_queue": ("people", True),
    "human_annotations": ("people", True),
    "annotator_reliability": ("quality", True),
    "filtered_annotations": ("quality", True),
    "final_labels": ("quality", True),
    "agreement_report": ("reports", True),
    "cost_report": ("reports", True),
    "preference_dataset": ("outputs", True),
    "published_dataset": ("outputs", True),
}

CHECKS = {
    ("agreement_report", "krippendorff_alpha_meets_guideline"),
    ("annotator_reliability", "no_annotator_flagged_by_gold"),
    ("ai_labels", "judge_verdicts_readable_and_consistent"),
    ("ai_labels", "labels_under_current_versions"),
    ("final_labels", "label_distribution_stable"),
    ("routing", "spot_check_disagreement_low"),
    ("preference_dataset", "export_is_well_formed"),
    ("preference_dataset", "export_responses_not_empty"),
    ("guidelines", "batches_under_current_guidelines"),
}


def test_definitions_snapshot(data_dir):
    defs = build_definitions()
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()

    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(ASSETS)
    for key, (group, partitioned) in ASSETS.items():
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == group, key
        assert (node.partitions_def is not None) == partitioned, key
        if partitioned:
            assert isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
            assert node.partitions_def.name == "batches"

    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == CHECKS

    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {"pipeline"}
    assert {s.name for s in repo.schedule_defs} == {"nightly_open_batches"}
    assert {s.name for s in repo.sensor_defs} == {"new_batch_sensor", "relabel_on_guideline_change", "runs_whose_process_died", "settle_finished_runs",
                                                    "labels_complete_sensor"}
    assert set(defs.resources) >= {"warehouse", "llm"}
