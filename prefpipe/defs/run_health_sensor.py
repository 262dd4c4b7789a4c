"""The sensor that frees the run queue from runs whose process died (prefpipe.defs.run_health)."""

import dagster as dg

from prefpipe.defs.run_health import fail_runs_whose_process_died


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def runs_whose_process_died(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Every 30 s: a run still marked in progress whose process is gone (killed with SIGKILL,
    crashed) is marked failed, so the run queue starts the next run and the warehouse puts back
    what the dead run had written. On by default."""
    failed = fail_runs_whose_process_died(context.instance)
    if failed:
        context.log.warning(f"marked {len(failed)} run(s) failed whose process is gone: {', '.join(failed)}")
    return dg.SkipReason(f"{len(failed)} dead run(s) marked failed" if failed else "every active run's process is alive")
