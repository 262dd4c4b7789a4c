"""The sensors that keep runs honest: one frees the run queue from runs whose process died
(prefpipe.defs.run_health), one settles finished runs' undo logs in the lakehouse."""

import dagster as dg

from prefpipe.core.warehouse import connect_for_write
from prefpipe.core.warehouse_target import parse_target
from prefpipe.defs.resources import WarehouseReader
from prefpipe.defs.run_health import fail_runs_whose_process_died
from prefpipe.defs.warehouse_io import settle_finished_runs as settle_runs


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def runs_whose_process_died(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Every 30 s: a run still marked in progress whose process is gone (killed with SIGKILL,
    crashed) is marked failed, so the run queue starts the next run and the warehouse puts back
    what the dead run had written. On by default."""
    failed = fail_runs_whose_process_died(context.instance)
    if failed:
        context.log.warning(f"marked {len(failed)} run(s) failed whose process is gone: {', '.join(failed)}")
    return dg.SkipReason(f"{len(failed)} dead run(s) marked failed" if failed else "every active run's process is alive")


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def settle_finished_runs(context: dg.SensorEvaluationContext, warehouse_reader: WarehouseReader) -> dg.SkipReason:
    """Every 30 s, with the lakehouse: a finished run's undo log is settled, so a run that failed
    leaves every table's rows for its batch as they were before it, and a successful one's copies
    are dropped. (With the DuckDB file every run settles itself as it ends.) On by default."""
    where = parse_target(warehouse_reader.database)
    if not where.is_lakehouse:
        return dg.SkipReason("the DuckDB warehouse is settled by each run as it ends, and by the next writer")
    con = connect_for_write(warehouse_reader.database, {})
    try:
        done = settle_runs(con, context.instance)
    finally:
        con.close()
    restored = sorted(run for run, what in done.items() if what == "restored")
    if restored:
        context.log.warning(f"put back what {len(restored)} failed run(s) wrote: {', '.join(restored)}")
    return dg.SkipReason(f"settled {len(done)} finished run(s)" if done else "no finished run to settle")
