"""The one Definitions of the prefpipe code location: every Dagster object under prefpipe/defs/
(loaded from the folder), the guideline-change automation applied to the assets, the resources
bound to the data folder (PREFPIPE_DATA_DIR, default ./data) and the warehouse
(PREFPIPE_WAREHOUSE), and the executor the warehouse allows (PREFPIPE_EXECUTOR)."""

import warnings
from pathlib import Path

import dagster as dg

import prefpipe.defs
from prefpipe.defs.automation import with_guideline_automation
from prefpipe.defs.executors import pipeline_executor
from prefpipe.defs.resources import build_resources, warehouse_of


def build_definitions(data_dir: Path | None = None) -> dg.Definitions:
    """Definitions bound to one data folder (tests build one per temporary folder)."""
    with warnings.catch_warnings():
        # the plain module loader (preview in 1.13): load_from_defs_folder would also build the
        # components tree, which reads the current Dagster instance; prefpipe/defs has no components
        warnings.simplefilter("ignore", dg.PreviewWarning)
        loaded = dg.load_definitions_from_package_module(prefpipe.defs)
    resources = build_resources(data_dir)
    return dg.Definitions(
        assets=with_guideline_automation(list(loaded.assets or [])),
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        sensors=loaded.sensors,
        schedules=loaded.schedules,
        resources=resources,
        executor=pipeline_executor(warehouse_of(resources)),  # in one process unless the lakehouse allows more
    )


defs = build_definitions()
