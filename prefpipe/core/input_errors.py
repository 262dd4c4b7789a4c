"""BatchInputError: bad input in a batch folder, located by file, line and field.

It lives apart from the readers so that every reader (the JSONL reader, batch.json, prompts,
imported labels) raises the same error without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from prefpipe.errors import PrefpipeError


class BatchInputError(PrefpipeError, ValueError):
    """Bad batch input; the message names the file, line and field."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None, field: str | None = None):
        where = str(path) + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field, self.reason = str(path), line, field, message
