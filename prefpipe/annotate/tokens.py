"""Annotator tokens: random secrets shown once, stored only as a hash.

A token carries 256 bits from `secrets`, so a single fast sha256 is the right hash: there is
nothing to brute-force that a slow password hash would protect, and a fast hash keeps the
per-request lookup cheap (it is an indexed equality on the hash).
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "pp_"


def new_token() -> str:
    """A fresh secret token, e.g. 'pp_3q2...'; the prefix makes a leaked token easy to grep for."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_task_id() -> str:
    """An opaque task id: random, so it says nothing about the item, its batch or whether it is gold."""
    return secrets.token_urlsafe(16)
