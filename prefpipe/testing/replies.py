"""What the scripted server answers: scripted replies and faults, the default responder, and
chat completions as JSON (with token logprobs and usage).

Kept apart from the HTTP side (`scripted_server`) so a test can build a completion body or ask
what the default responder would say without starting a server.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

VERDICTS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+")
QUALITY_RE = re.compile(r"\[\[q=([0-9.]+)\]\]")
WORDS = (
    "the answer depends on context and careful reading of the question shows that a simple rule "
    "applies here first consider the inputs then check each case the result follows directly from "
    "definitions we can verify this by example note that edge cases matter in practice so test them "
    "this approach is correct efficient clear and safe although other methods exist they are slower"
).split()


@dataclass
class Reply:
    """A scripted answer. `certainty` is the probability the logprobs give the verdict/score."""

    text: str
    finish_reason: str = "stop"
    certainty: float = 0.9


FaultKind = Literal[
    "400", "429", "500", "timeout", "truncated", "malformed", "cut",
    "huge_body", "hang", "trickle", "empty_choices", "no_choices", "null_content",
]  # fmt: skip


@dataclass
class Fault:
    kind: FaultKind
    retry_after: float | None = None
    delay: float = 3.0
    """For "timeout": how long the server stalls before answering (beyond the client's timeout).
    For "trickle": the pause between two bytes."""
    size: int = 100 * 2**20
    """For "huge_body": the bytes of the body, streamed in chunks (never held in memory)."""


Action = Reply | Fault | str


@dataclass
class FaultRates:
    """Fractions of first attempts answered with each fault (deterministic by request hash)."""

    rate_429: float = 0.0
    retry_after: float | None = 0.2
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    timeout_delay: float = 3.0
    rate_truncated: float = 0.0
    rate_malformed: float = 0.0
    rate_cut: float = 0.0
    seed: int = 0

    def pick(self, digest: bytes) -> Fault | None:
        u = int.from_bytes(hashlib.sha256(digest + str(self.seed).encode()).digest()[:8], "big") / 2**64
        for kind, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("timeout", self.rate_timeout),
            ("truncated", self.rate_truncated),
            ("malformed", self.rate_malformed),
            ("cut", self.rate_cut),
        ):
            if u < rate:
                return Fault(kind, retry_after=self.retry_after if kind == "429" else None, delay=self.timeout_delay)  # type: ignore[arg-type]
            u -= rate
        return None


@dataclass
class Rule:
    contains: str
    actions: list[Action]
    repeat: bool = False
    used: int = 0

    def next_action(self) -> Action | None:
        if self.used < len(self.actions):
            action = self.actions[self.used]
        elif self.repeat and self.actions:
            action = self.actions[-1]
        else:
            return None
        self.used += 1
        return action


@dataclass
class ServerState:
    """Settings a running server reads on every request (`POST /_config` changes them)."""

    latency: float = 0.0
    faults: FaultRates = field(default_factory=FaultRates)
    position_bias: float = 0.0
    batch_polls: int = 1
    """Polls of a batch that still say in_progress before it completes."""
    keep_bodies: bool = True


Responder = Callable[[dict[str, Any], int, "ServerState"], Reply]


# -- the default responder ----------------------------------------------------------------------
def quality(text: str) -> float:
    """A response's hidden quality in [0, 1): its [[q=X]] marker, else a stable hash."""
    marker = QUALITY_RE.search(text)
    if marker:
        return min(1.0, float(marker.group(1)))
    return int.from_bytes(hashlib.sha256(text.strip().encode()).digest()[:4], "big") / 2**32


def _between(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.S)
    return None if match is None else match.group(1)


def default_responder(body: dict[str, Any], variant: int, state: ServerState) -> Reply:
    messages = body.get("messages") or []
    everything = "\n".join(str(m.get("content", "")) for m in messages)
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    instructions = system or everything
    if "VERDICT:" in instructions:
        first, second = _between(everything, "response_a"), _between(everything, "response_b")
        if first is None or second is None:
            return Reply("I cannot compare these responses.", certainty=0.5)
        diff = quality(first) - quality(second) + state.position_bias
        verdict = "A>>B" if diff > 0.3 else "A>B" if diff > 0.05 else "A=B" if diff >= -0.05 else "B>A" if diff >= -0.3 else "B>>A"
        certainty = 0.55 + 0.4 * min(1.0, abs(diff) / 0.5)
        return Reply(f"Response A is worth {quality(first):.2f} and response B {quality(second):.2f} under the rubric.\nVERDICT: {verdict}", certainty=certainty)
    if "SCORE:" in instructions:
        response = _between(everything, "response")
        if response is None:
            return Reply("There is no response to score.", certainty=0.5)
        score = 1 + round(9 * quality(response))
        return Reply(f"Judged against the rubric.\nSCORE: {score}", certainty=0.8)
    prompt = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    temperature = float(body.get("temperature", 1.0))
    seed = body.get("seed")
    sample = 0 if temperature == 0 else int(seed) if seed is not None else variant
    digest = hashlib.sha256(f"{body.get('model')}|{prompt}|{temperature}|{sample}".encode()).digest()
    words = [WORDS[b % len(WORDS)] for b in digest[:24]]
    q = digest[24] / 256
    return Reply(f"{' '.join(words).capitalize()}. [[q={q:.2f}]]", certainty=0.9)


# -- answers as JSON ------------------------------------------------------------------------------
def unusable_body(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer that is valid JSON and still carries no answer: `choices` empty ("malformed",
    "empty_choices") or missing ("no_choices", as a proxy passing an error on with status 200),
    or one choice whose content is null with no tool call ("null_content")."""
    head = {"id": "chatcmpl-broken", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "")}
    if kind == "no_choices":
        return {**head, "error": {"message": "upstream failed (scripted)", "type": "server_error"}}
    if kind == "null_content":
        return {**head, "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]}
    return {**head, "choices": []}


def huge_completion(body: dict[str, Any], size: int, chunk: int = 2**16) -> Iterator[bytes]:
    """A chat completion of `size` bytes whose content is filler, produced chunk by chunk."""
    head = json.dumps(completion_body(body, Reply("")))
    before, after = head.split('"content": ""', 1)
    start, end = (before + '"content": "').encode(), ('"' + after).encode()
    yield start
    left = max(0, size - len(start) - len(end))
    while left > 0:
        yield b"a" * min(chunk, left)
        left -= chunk
    yield end


def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def completion_body(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    text, finish = reply.text, reply.finish_reason
    tokens = tokenize(text)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if limit and len(tokens) > int(limit):
        tokens, finish = tokens[: int(limit)], "length"
        text = "".join(tokens)
    prompt_tokens = sum(len(tokenize(str(m.get("content", "")))) for m in body.get("messages") or [])
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if body.get("logprobs"):
        choice["logprobs"] = {"content": _logprobs(tokens, reply.certainty, int(body.get("top_logprobs") or 0))}
    return {
        "id": "chatcmpl-" + hashlib.sha1(text.encode()).hexdigest()[:20],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens), "total_tokens": prompt_tokens + len(tokens)},
    }


def _logprobs(tokens: list[str], certainty: float, top: int) -> list[dict[str, Any]]:
    """Near-certain tokens, except the verdict/score value, whose tokens share log(certainty)."""
    text = "".join(tokens)
    value = re.search(r"(?:VERDICT|SCORE):\s*(\S+)\s*$", text)
    spans, start = [], 0
    for tok in tokens:
        spans.append((start, start + len(tok)))
        start += len(tok)
    inside = [value is not None and s < value.end(1) and e > value.start(1) and tok.strip() != "" for tok, (s, e) in zip(tokens, spans)]
    n_value = max(1, sum(inside))
    out = []
    for tok, is_value in zip(tokens, inside):
        lp = math.log(max(certainty, 1e-9)) / n_value if is_value else math.log(0.995)
        entry: dict[str, Any] = {"token": tok, "logprob": lp, "bytes": list(tok.encode())}
        if top:
            rest = math.log(max(1e-9, 1 - math.exp(lp)))
            entry["top_logprobs"] = [
                {"token": tok, "logprob": lp, "bytes": list(tok.encode())},
                {"token": " other", "logprob": rest, "bytes": list(b" other")},
            ][:top]
        out.append(entry)
    return out

