"""Signing in: annotator tokens that expire, sessions the page signs in and out with, rotation.

An annotator's token (from `add_annotator` or `rotate_token`) is their key: it works until it
expires (TOKEN_TTL_S, 30 days, unless issued with another ttl) or is rotated. The page trades it
for a session token (`open_session`) and keeps only that in the browser; signing out revokes the
session (`sign_out`), so a session left in a browser, a proxy log or a screenshot stops working. A
session ends after SESSION_TTL_S (12 hours) and never outlives its key; rotating the key, or
signing out with the key itself, ends every session of the annotator. Both kinds are random
256-bit secrets kept only as hashes (tokens.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from prefpipe.annotate.errors import AnnotatorError, TokenRefused
from prefpipe.annotate.store.annotators import Annotator
from prefpipe.annotate.store.schema import TOKEN_TTL_S, StoreBase
from prefpipe.annotate.store.values import iso_utc
from prefpipe.annotate.tokens import hash_token, new_token

SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 20
"""Live sessions kept per annotator; signing in again drops the oldest beyond this."""

_SIGN_IN = """
SELECT an.id, an.name, an.role, an.flagged, an.disabled, an.token_expires_at, NULL
FROM annotators an WHERE an.token_hash = :digest
UNION ALL
SELECT an.id, an.name, an.role, an.flagged, an.disabled, s.expires_at, s.id
FROM sessions s JOIN annotators an ON an.id = s.annotator_id WHERE s.token_hash = :digest
"""


@dataclass(frozen=True)
class SignedIn:
    """Who a token signs in, and with what: their own token (session_id None) or a session."""

    annotator: Annotator
    session_id: int | None
    expires_at: float


class SessionsMixin(StoreBase):
    """Token checks, the `sessions` table, sign-out and rotation."""

    def sign_in(self, token: str | None) -> SignedIn:
        """Who holds this token; TokenRefused says why not (missing, unknown, disabled, expired)."""
        if not token:
            raise TokenRefused("missing token: send Authorization: Bearer TOKEN")
        digest = hash_token(token)
        with self._read() as conn:
            row = conn.execute(sa.text(_SIGN_IN), {"digest": digest}).fetchone()
        if row is None:
            raise TokenRefused("unknown or revoked token")
        annotator_id, name, role, flagged, disabled, expires_at, session_id = row
        if disabled:
            raise TokenRefused("this account is disabled")
        if expires_at is None or expires_at <= self._clock():
            what, remedy = (("session", "sign in again with your annotator token") if session_id is not None
                            else ("token", "ask an admin for a new one (prefpipe annotators rotate NAME)"))
            raise TokenRefused(f"this {what} expired at {iso_utc(expires_at)}; {remedy}")
        return SignedIn(Annotator(annotator_id, name, role, bool(flagged)), session_id, float(expires_at))

    def authenticate(self, token: str | None) -> Annotator | None:
        """The enabled annotator holding this unexpired token, or None."""
        try:
            return self.sign_in(token).annotator
        except TokenRefused:
            return None

    def open_session(self, who: SignedIn, ttl_s: float = SESSION_TTL_S) -> tuple[str, float]:
        """A new session token for an annotator signed in with their own token, and when it expires."""
        token, now = new_token(), self._clock()
        expires_at = min(now + float(ttl_s), who.expires_at)
        annotator_id = who.annotator.id
        with self._write() as conn:
            args = {"annotator": annotator_id, "now": now, "keep": MAX_SESSIONS - 1}
            self._lock_annotator(conn, annotator_id)  # one annotator's sign-ins take turns: the cap holds across replicas
            conn.execute(sa.text(
                """DELETE FROM sessions WHERE annotator_id = :annotator AND (expires_at <= :now OR id NOT IN (
                       SELECT id FROM sessions WHERE annotator_id = :annotator ORDER BY id DESC LIMIT :keep))"""), args)
            conn.execute(sa.text(
                "INSERT INTO sessions (annotator_id, token_hash, created_at, expires_at) VALUES (:annotator, :hash, :now, :expires)"),
                {**args, "hash": hash_token(token), "expires": expires_at})
        return token, expires_at

    def sign_out(self, who: SignedIn) -> None:
        """Revoke the token `who` signed in with: their session, or (their own token) every token they have."""
        with self._write() as conn:
            if who.session_id is not None:
                conn.execute(sa.text("DELETE FROM sessions WHERE id = :id"), {"id": who.session_id})
            else:
                _replace_key(conn, "id = :who", who.annotator.id, 0.0)

    def rotate_token(self, name: str, *, ttl_s: float = TOKEN_TTL_S) -> str:
        """A new token for `name`, valid for `ttl_s` seconds; the old one and its sessions stop working."""
        with self._write() as conn:
            token = _replace_key(conn, "name = :who", name, self._clock() + float(ttl_s))
        if token is None:
            raise AnnotatorError(f"name: no annotator called {name!r}")
        return token


def _replace_key(conn: sa.Connection, where_sql: str, who: object, expires_at: float) -> str | None:
    """Give one annotator a fresh token and end their sessions; the token, or None if nobody matched."""
    token = new_token()
    row = conn.execute(sa.text(
        f"UPDATE annotators SET token_hash = :hash, token_expires_at = :expires WHERE {where_sql} RETURNING id"),
        {"hash": hash_token(token), "expires": expires_at, "who": who},
    ).fetchone()
    if row is None:
        return None
    conn.execute(sa.text("DELETE FROM sessions WHERE annotator_id = :annotator"), {"annotator": row[0]})
    return token
