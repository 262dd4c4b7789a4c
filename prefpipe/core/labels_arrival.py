"""When labels arriving in the annotation app should start a batch's run: at once when its queue
has every label it wanted, and at most once an hour while labels keep arriving, so a finished
batch publishes without waiting for the night and a long one shows progress through the day.

Plain data in and out (the store's queue progress, the previous decision's memory), so the sensor
in prefpipe/defs/labels_complete_sensor.py is a thin shell and the rule is tested on its own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PARTIAL_EVERY_S = 3600.0
"""Least time between two runs started while a batch's labels are still arriving."""


@dataclass(frozen=True)
class Due:
    batch_id: str
    run_key: str
    reason: str


def due_runs(queues: list[dict[str, Any]], registered: set[str], cursor: str | None, now: float,
             partial_every_s: float = PARTIAL_EVERY_S) -> tuple[list[Due], str]:
    """The runs to start and the new cursor (JSON: per batch, the answers counted at the last look
    and when a run was last started for arriving labels).

    queues: the store's queue_progress rows (batch_id, items, labels_wanted, answered, waiting).
    A batch is due when new answers have come since the last look and either its queue is complete
    (every item has its labels) or the last run started for it is `partial_every_s` old. The first
    look at a batch only remembers its count: the run that queued it, or the nightly schedule,
    already covers what was there. Run keys carry the answer count, so one state starts one run."""
    memory: dict[str, dict[str, float | None]] = json.loads(cursor) if cursor else {}
    due: list[Due] = []
    for q in queues:
        batch, answered = q["batch_id"], int(q["answered"])
        if batch not in registered or not q["items"]:
            continue
        seen = memory.get(batch)
        memory[batch] = {"answered": answered, "started_at": seen["started_at"] if seen else None}
        if seen is None or answered <= seen["answered"]:
            continue
        if q["waiting"] == 0:
            due.append(Due(batch, f"labels-complete:{batch}:{answered}", f"all {q['labels_wanted']} label(s) wanted are in"))
        elif seen["started_at"] is None or now - seen["started_at"] >= partial_every_s:
            due.append(Due(batch, f"labels-arriving:{batch}:{answered}", f"{answered} of {q['labels_wanted']} label(s) in, still arriving"))
        else:
            memory[batch]["answered"] = seen["answered"]  # not looked at yet: these answers still count as new next time
            continue
        memory[batch]["started_at"] = now
    return due, json.dumps(memory, sort_keys=True)
