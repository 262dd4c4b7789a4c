"""What a chat-completion call asks for and what it got back.

A request's cache key is a hash of everything that decides the answer: model, messages and sampling
parameters, plus the sample index when the temperature is above zero, so that best-of-n gets n
different stored samples while a deterministic (temperature 0) request is stored once. Tags say
which stage and item a call served; they are not part of the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

Status = Literal["ok", "failed", "pending"]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs, in order."""
    temperature: float = 0.0
    max_tokens: int | None = None
    top_p: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    seed: int | None = None
    sample_index: int = 0
    stage: str = ""
    actor: str = ""
    item_id: str = ""

    @classmethod
    def chat(cls, model: str, messages: list[dict[str, str]] | list[tuple[str, str]], **kwargs: Any) -> "ChatRequest":
        pairs = tuple((m["role"], m["content"]) if isinstance(m, dict) else (m[0], m[1]) for m in messages)
        return cls(model=model, messages=pairs, **kwargs)

    def params(self) -> dict[str, Any]:
        """The sampling parameters sent to the server (unset ones are left to the server)."""
        out: dict[str, Any] = {"temperature": self.temperature}
        for name in ("max_tokens", "top_p", "seed"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.logprobs:
            out["logprobs"] = True
            if self.top_logprobs:
                out["top_logprobs"] = self.top_logprobs
        return out

    def body(self) -> dict[str, Any]:
        """The JSON body of POST /v1/chat/completions."""
        return {
            "model": self.model,
            "messages": [{"role": r, "content": c} for r, c in self.messages],
            **self.params(),
        }

    @cached_property
    def key(self) -> str:
        """sha256 over model, messages, sampling parameters and (above temperature 0) the sample
        index, fed piece by piece: no JSON escaping of long messages on the hot path."""
        digest = hashlib.sha256(b"prefpipe-chat-v1\0")
        digest.update(self.model.encode("utf-8") + b"\0")
        for role, content in self.messages:
            digest.update(role.encode("utf-8") + b"\0" + str(len(content)).encode() + b"\0" + content.encode("utf-8"))
        params = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        digest.update(b"\0" + params.encode() + b"\0" + str(self.sample_index if self.temperature > 0 else 0).encode())
        return digest.hexdigest()

    def with_reply(self, answer: str, follow_up: str, **tags: str) -> "ChatRequest":
        """The same conversation continued: the model's answer, then a new user turn."""
        messages = self.messages + (("assistant", answer), ("user", follow_up))
        fields = {**self.__dict__, "messages": messages, **tags}
        fields.pop("key", None)
        return ChatRequest(**fields)


@dataclass
class Completion:
    """One call's outcome. `cached` means nothing was sent (or paid) for it in this run."""

    key: str
    model: str
    status: Status
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token_ends: np.ndarray | None = field(default=None, repr=False)
    """Character offset where each token of the answer ends, when the server returned
    log-probabilities and its tokens spell the answer (else None)."""
    token_logprobs: np.ndarray | None = field(default=None, repr=False)
    cached: bool = False
    batch: bool = False
    attempts: int = 0
    error: str | None = None
    latency_s: float | None = None
    request: ChatRequest | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tokens(self) -> list[str] | None:
        if self.token_ends is None or self.text is None:
            return None
        ends = self.token_ends.tolist()
        return [self.text[a:b] for a, b in zip([0, *ends[:-1]], ends)]

    def stored(self) -> dict[str, Any]:
        """The part kept in the cache: enough to rebuild the answer without the request."""
        return {
            "model": self.model,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "token_ends": _pack(self.token_ends, "<u4"),
            "token_logprobs": _pack(self.token_logprobs, "<f4"),
            "batch": self.batch,
        }

    @classmethod
    def from_stored(cls, key: str, data: dict[str, Any], request: ChatRequest | None = None) -> "Completion":
        return cls(
            key=key,
            model=data["model"],
            status="ok",
            text=data["text"],
            finish_reason=data.get("finish_reason"),
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            token_ends=_unpack(data.get("token_ends"), "<u4"),
            token_logprobs=_unpack(data.get("token_logprobs"), "<f4"),
            cached=True,
            batch=bool(data.get("batch")),
            request=request,
        )


class MalformedResponse(ValueError):
    """The server answered 200 with something that is not a chat completion."""


def completion_fields(payload: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """Read a chat-completion JSON body strictly: a body with no text answer in it (no choices,
    empty choices, null content) is malformed, and the error says which."""
    try:
        data = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
        choice, text = _answer(data)
        usage = data.get("usage") or {}
        ends = logprobs = None
        content_lp = (choice.get("logprobs") or {}).get("content")
        if content_lp:
            tokens = [str(t["token"]) for t in content_lp]
            logprobs = np.array([float(t["logprob"]) for t in content_lp])
            if "".join(tokens) == text:
                ends = np.cumsum([len(t) for t in tokens], dtype=np.int64)
        return {
            "text": text,
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": _int_or_none(usage.get("prompt_tokens")),
            "completion_tokens": _int_or_none(usage.get("completion_tokens")),
            "token_ends": ends,
            "token_logprobs": logprobs,
        }
    except MalformedResponse as exc:
        raise MalformedResponse(f"{exc}: {_snippet(payload)}") from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise MalformedResponse(f"not a chat completion ({type(exc).__name__}: {exc}): {_snippet(payload)}") from exc


def _answer(data: Any) -> tuple[dict[str, Any], str]:
    """The first choice and its text, or MalformedResponse saying why there is no answer."""
    if not isinstance(data, dict):
        raise TypeError(f"the body is a JSON {type(data).__name__}, not an object")
    if "choices" not in data:
        error = data.get("error")
        raise MalformedResponse("no 'choices' in the answer" + (f" (it carries an error: {json.dumps(error)[:200]})" if error else ""))
    if not data["choices"]:
        raise MalformedResponse("'choices' is empty: the server returned no answer")
    choice = data["choices"][0]
    message = choice.get("message") or {}
    text = message.get("content")
    if text is None:
        why = (
            ": the model called a tool instead of answering" if message.get("tool_calls")
            else f": the model refused ({str(message['refusal'])[:200]})" if message.get("refusal")
            else " and there is no tool call"
        )  # fmt: skip
        raise MalformedResponse(f"message.content is null{why} (finish_reason {choice.get('finish_reason')!r})")
    if not isinstance(text, str):
        raise TypeError(f"message.content is {type(text).__name__}")
    return choice, text


def _snippet(payload: str | bytes | dict[str, Any]) -> str:
    if isinstance(payload, bytes):
        payload = payload[:400].decode("utf-8", errors="replace")
    return (payload if isinstance(payload, str) else repr(payload))[:200]


def parse_chat_completion(payload: str | bytes | dict[str, Any], request: ChatRequest) -> Completion:
    return Completion(key=request.key, model=request.model, status="ok", request=request, **completion_fields(payload))


def _pack(values: np.ndarray | None, dtype: str) -> str | None:
    """A numeric array as base64 of its little-endian bytes: ten times faster to read back than a
    JSON list, which matters when a rerun reads thousands of answers from the cache."""
    return None if values is None else base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode("ascii")


def _unpack(packed: str | None, dtype: str) -> np.ndarray | None:
    return None if packed is None else np.frombuffer(base64.b64decode(packed), dtype=dtype)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
