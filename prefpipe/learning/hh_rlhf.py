"""Read Anthropic HH-RLHF transcripts as (prompt, chosen, rejected) for reward-model replays.

Each row holds two full transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...") that share a prefix and
differ in the final Assistant turn. The prompt is the shared prefix up to and including the last
"\\n\\nAssistant:" before the two diverge; each response is the rest. Rows whose transcripts are
identical carry no preference and are dropped (counted, not hidden).
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class HHPairs:
    pairs: pd.DataFrame  # columns: row, prompt, chosen, rejected
    dropped_identical: int


def split_transcripts(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen response, rejected response), or None when the transcripts are identical."""
    if chosen == rejected:
        return None
    common = len(os.path.commonprefix([chosen, rejected]))
    cut = chosen.rfind(ASSISTANT, 0, common + 1)
    if cut < 0 or cut + len(ASSISTANT) > common:
        # they diverge inside or before the marker: fall back to the last marker wholly shared
        cut = chosen.rfind(ASSISTANT, 0, max(common - len(ASSISTANT) + 1, 0))
    if cut < 0:
        return ("", chosen.strip(), rejected.strip())
    end = cut + len(ASSISTANT)
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


def load_hh_pairs(path: str | Path) -> HHPairs:
    """Read a (gzip'd) HH-RLHF JSON Lines file. Errors name the file and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[tuple[int, str, str, str]] = []
    dropped = 0
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                chosen, rejected = obj["chosen"], obj["rejected"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{line_no}: expected an object with 'chosen' and 'rejected' ({exc})") from exc
            if not isinstance(chosen, str) or not isinstance(rejected, str):
                raise ValueError(f"{path}:{line_no}: 'chosen' and 'rejected' must be text")
            split = split_transcripts(chosen, rejected)
            if split is None:
                dropped += 1
                continue
            rows.append((line_no, *split))
    return HHPairs(pd.DataFrame(rows, columns=["row", "prompt", "chosen", "rejected"]), dropped)
