"""What can go wrong when an annotator acts, as exceptions the app maps to HTTP statuses."""

from __future__ import annotations

from prefpipe.errors import PrefpipeError


class AnnotateError(PrefpipeError):
    """Base class: a refused action; nothing stored was changed."""


class FieldError(AnnotateError, ValueError):
    """A value outside what is allowed; `field` is a dotted path such as 'dimensions.helpfulness.A'."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TaskNotFound(AnnotateError, LookupError):
    """No such task for this annotator (another annotator's task looks exactly like a missing one)."""


class AlreadyAnswered(AnnotateError):
    """The annotator already answered or skipped this task; the first answer stands."""


class AnnotatorError(AnnotateError, ValueError):
    """An annotator name that is malformed, taken or unknown."""


class AnnotatorPaused(AnnotateError):
    """The annotator is flagged by gold and receives no tasks until an admin unflags them."""


class TokenRefused(AnnotateError):
    """A token that signs no one in: missing, unknown, revoked, expired, or of a disabled account;
    the message says which, for the 401 (it never names the account)."""


UNAVAILABLE_DETAIL = "the annotation store is unavailable; nothing was stored, try again shortly"
"""What a client is told (503, Retry-After) when the store cannot be reached."""


class StoreUnavailable(AnnotateError):
    """The annotation store cannot be reached (PostgreSQL down or restarting, a SQLite file busy
    beyond the wait): nothing was stored; the request may be sent again."""
