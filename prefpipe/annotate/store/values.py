"""How the store names and dates things: a pair's content key and stored times as ISO UTC.

Both are pure functions shared by several parts of the store (the queue keys items by content, the
annotator list, gold report and read-back render timestamps), and the CLI computes content keys too;
they live apart so none of those parts has to import another for them.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable


def content_key(prompt: str, response_a: str, response_b: str) -> str:
    """Identifies a pair by content, whatever its id or order, so nobody meets it twice."""
    first, second = sorted((response_a, response_b))
    digest = hashlib.sha256()
    for part in (prompt, first, second):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def content_keys(prompts: Iterable[str], responses_a: Iterable[str], responses_b: Iterable[str]) -> list[str]:
    """content_key of each pair, in bulk: one SHA-256 call a pair over the three texts joined (the
    same digest). OpenSSL's hashing is most of the time; DuckDB's sha256 over a column is slower."""
    sha256 = hashlib.sha256
    return [sha256(f"{p}\0{a}\0{b}\0".encode() if a <= b else f"{p}\0{b}\0{a}\0".encode()).hexdigest()[:32]
            for p, a, b in zip(prompts, responses_a, responses_b)]


def iso_utc(ts: float | None) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(round((ts % 1) * 1000)) % 1000:03d}Z"
