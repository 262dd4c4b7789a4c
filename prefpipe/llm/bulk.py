"""Chat requests by the million as SQL: cache keys and Batch API lines computed by DuckDB over a
table, with no Python object per request.

A stage whose requests are a fixed text with a table's columns spliced in (the judge: guidelines,
then the prompt and two responses) describes each message as pieces: literal text, or `Column(name)`.
`keys` gives the same key `ChatRequest.key` computes (sha256 over model, each message's role,
length and content, the sampling parameters, the sample index) and `line_sql` the Batch API input
line (`{"custom_id", "method", "url", "body"}` plus a newline) with the body `wire_body` would send.
Messages are stripped of surrounding whitespace as `str.strip()` does (the prompt templates do).
The tests hold both against `ChatRequest` on awkward text (Unicode, quotes, control characters).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prefpipe.llm.request import ChatRequest

WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
"""Every character `str.isspace()` accepts: what `str.strip()` removes, for DuckDB's trim()."""
CHAT_URL = "/v1/chat/completions"


@dataclass(frozen=True)
class Column:
    """A piece of a message that is the value of a column of the table."""

    name: str


Piece = str | Column


@dataclass(frozen=True)
class BulkRequest:
    """Requests that share a model and parameters; messages are (role, pieces)."""

    model: str
    messages: tuple[tuple[str, tuple[Piece, ...]], ...]
    params: dict[str, Any]
    """`ChatRequest.params()` of these requests: what the key covers."""
    wire: dict[str, Any]
    """The wire body without model and messages (max_tokens possibly renamed)."""

    @classmethod
    def like(cls, sample: ChatRequest, messages: tuple[tuple[str, tuple[Piece, ...]], ...], wire_body: dict[str, Any]) -> "BulkRequest":
        """Requests with `sample`'s model and parameters; `wire_body` is the sample's wire body."""
        if sample.temperature > 0 and sample.sample_index:
            raise ValueError("bulk requests are one sample each (sample_index 0)")
        wire = {k: v for k, v in wire_body.items() if k not in ("model", "messages")}
        return cls(sample.model, messages, sample.params(), wire)

    def contents_sql(self) -> list[tuple[str, str]]:
        """(role, SQL expression of the stripped content) per message. A message that starts and
        ends with literal text is stripped here, once (DuckDB's trim() costs ~25 us a row)."""
        out = []
        for role, pieces in self.messages:
            if all(isinstance(p, str) for p in pieces):
                out.append((role, literal("".join(pieces).strip())))  # type: ignore[arg-type]
                continue
            parts = [p for p in pieces if p != ""]
            lead, tail = isinstance(parts[0], str) and parts[0].strip(), isinstance(parts[-1], str) and parts[-1].strip()
            if lead:
                parts[0] = parts[0].lstrip()  # type: ignore[union-attr]
            if tail:
                parts[-1] = parts[-1].rstrip()  # type: ignore[union-attr]
            sql = " || ".join(literal(p) if isinstance(p, str) else f'"{p.name}"' for p in parts)
            sql = sql if lead else f"ltrim({sql}, {literal(WHITESPACE)})"
            out.append((role, sql if tail else f"rtrim({sql}, {literal(WHITESPACE)})"))
        return out

    def shared(self) -> int:
        """How many leading messages are the same text for every row."""
        return next((n for n, (_, pieces) in enumerate(self.messages) if not all(isinstance(p, str) for p in pieces)), len(self.messages))

    def keys(self, contents: Iterable[tuple[str, ...]]) -> list[str]:
        """The cache key of each row from the contents of its messages after the `shared()` ones
        (SQL from `contents_sql`): hashlib in Python, the messages the rows share hashed once (DuckDB's sha256 runs at about
        65 MB/s, against 1 GB/s here, and the judge's shared system message is most of the bytes)."""
        prefix = hashlib.sha256(b"prefpipe-chat-v1\0" + self.model.encode("utf-8") + b"\0")
        shared = self.shared()
        for role, pieces in self.messages[:shared]:
            text = "".join(pieces).strip()  # type: ignore[arg-type]
            prefix.update(role.encode("utf-8") + b"\0" + str(len(text)).encode() + b"\0" + text.encode("utf-8"))
        roles = [r.encode("utf-8") + b"\0" for r, _ in self.messages[shared:]]
        tail = b"\0" + json.dumps(self.params, sort_keys=True, separators=(",", ":")).encode() + b"\0" + b"0"
        out = []
        for row in contents:
            digest = prefix.copy()
            for role, text in zip(roles, row):
                digest.update(role + str(len(text)).encode() + b"\0" + text.encode("utf-8"))
            digest.update(tail)
            out.append(digest.hexdigest())
        return out

    def line_sql(self, key: str, contents: list[str]) -> str:
        """The Batch API input line of each row (custom_id = the cache key), newline included."""
        messages = [f"'{{\"role\":' || {literal(json.dumps(role))} || ',\"content\":' || to_json({c}) || '}}'" for (role, _), c in zip(self.messages, contents)]
        head = json.dumps({"model": self.model}, ensure_ascii=False)[:-1] + ',"messages":['
        tail = "]" + "".join(f",{json.dumps(k)}:{json.dumps(v, ensure_ascii=False)}" for k, v in self.wire.items()) + "}}\n"
        start = '{"custom_id":"'
        middle = f'","method":"POST","url":"{CHAT_URL}","body":' + head
        return f"{literal(start)} || {key} || {literal(middle)} || " + " || ',' || ".join(messages) + f" || {literal(tail)}"


def literal(text: str) -> str:
    """A SQL string literal (DuckDB's: quotes doubled, backslashes literal; NUL as chr(0))."""
    if "\0" in text:
        return "(" + " || chr(0) || ".join(literal(part) for part in text.split("\0")) + ")"
    return "'" + text.replace("'", "''") + "'"
