"""Annotator tokens: random secrets shown once, stored only as a hash; and keyed numbers.

A token carries 256 bits from `secrets`, so a single fast sha256 is the right hash: there is
nothing to brute-force that a slow password hash would protect, and a fast hash keeps the
per-request lookup cheap (it is an indexed equality on the hash).

Keyed numbers (an HMAC under the store's secret) place gold slots and each annotator's task order:
the same every time for the server, unpredictable for anyone without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "pp_"


def new_token() -> str:
    """A fresh secret token, e.g. 'pp_3q2...'; the prefix makes a leaked token easy to grep for."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def keyed_number(secret: bytes, message: str) -> int:
    """A 64-bit number from HMAC-SHA256(secret, message)."""
    return int.from_bytes(hmac.new(secret, message.encode(), hashlib.sha256).digest()[:8], "big")


def new_task_id() -> str:
    """An opaque task id: random, so it says nothing about the item, its batch or whether it is gold."""
    return secrets.token_urlsafe(16)
