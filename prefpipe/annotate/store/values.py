"""How the store names and dates things: a pair's content key and stored times as ISO UTC.

Both are pure functions shared by several parts of the store (the queue keys items by content, the
annotator list, gold report and read-back render timestamps), and the CLI computes content keys too;
they live apart so none of those parts has to import another for them.
"""

from __future__ import annotations

import hashlib
import math
import time


def content_key(prompt: str, response_a: str, response_b: str) -> str:
    """Identifies a pair by content, whatever its id or order, so nobody meets it twice."""
    first, second = sorted((response_a, response_b))
    digest = hashlib.sha256()
    for part in (prompt, first, second):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def iso_utc(ts: float | None) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(round((ts % 1) * 1000)) % 1000:03d}Z"
