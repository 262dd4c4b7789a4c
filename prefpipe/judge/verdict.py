"""Strict parsing of a judge's answer, and the probability the model gave its own verdict.

The answer must contain exactly one line `VERDICT: X` with X exactly one of the five labels
(markdown emphasis around it is tolerated; the keyword's case is not significant). No verdict, two
verdicts, a value off the scale or a refusal leave the label missing, with the problem named:
never a default tie. The same rule reads `SCORE: N` lines for the pointwise scorer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from prefpipe.core.labels import SCALE

_DECORATION = " \t*_`#>-"
_REFUSAL = re.compile(r"\b(I can(?:no|')t|I'm sorry|I am sorry|I won't|I will not|unable to (?:help|comply|assist))\b", re.I)


@dataclass(frozen=True)
class Parsed:
    value: str | None
    """The verdict label (or score text) when the answer is well formed, else None."""
    problem: str | None = None
    span: tuple[int, int] | None = None
    """Character span of the value in the answer, for its token log-probabilities."""


def _line_pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"^[{re.escape(_DECORATION)}]*{keyword}[*_`]*\s*:[*_`]*[ \t]*(?P<value>[^\n]*?)[ \t]*$", re.I | re.M)


_VERDICT_LINE = _line_pattern("VERDICT")
_SCORE_LINE = _line_pattern("SCORE")


def _single(text: str | None, pattern: re.Pattern[str], what: str) -> Parsed | re.Match[str]:
    if text is None or not text.strip():
        return Parsed(None, "empty answer")
    matches = list(pattern.finditer(text))
    if not matches:
        refusal = " (the answer reads as a refusal)" if _REFUSAL.search(text) else ""
        return Parsed(None, f"no {what} line{refusal}")
    if len(matches) > 1:
        return Parsed(None, f"{len(matches)} {what} lines")
    return matches[0]


def _trimmed(match: re.Match[str]) -> tuple[str, tuple[int, int]]:
    raw = match.group("value")
    start = match.start("value")
    left = len(raw) - len(raw.lstrip("*_` "))
    value = raw.strip("*_` ").rstrip(".").strip("*_` ")
    return value, (start + left, start + left + len(value))


def parse_verdict(text: str | None) -> Parsed:
    match = _single(text, _VERDICT_LINE, "VERDICT")
    if isinstance(match, Parsed):
        return match
    value, span = _trimmed(match)
    if value not in SCALE:
        return Parsed(None, f"verdict {value!r} is not one of {', '.join(SCALE)}")
    return Parsed(value, None, span)


def parse_score(text: str | None, low: int = 1, high: int = 10) -> Parsed:
    match = _single(text, _SCORE_LINE, "SCORE")
    if isinstance(match, Parsed):
        return match
    value, span = _trimmed(match)
    if not re.fullmatch(r"\d{1,3}", value) or not low <= int(value) <= high:
        return Parsed(None, f"score {value!r} is not a whole number from {low} to {high}")
    return Parsed(value, None, span)


def span_probability(text: str, token_ends: np.ndarray | None, logprobs: np.ndarray | None, span: tuple[int, int] | None) -> float | None:
    """exp(sum of the log-probabilities of the tokens covering `span`): the probability the model
    gave the exact value it wrote. None when the server sent no log-probabilities or its tokens
    do not spell the answer (then we cannot tell which tokens are the verdict)."""
    if token_ends is None or logprobs is None or span is None or len(token_ends) == 0:
        return None
    if len(token_ends) != len(logprobs) or int(token_ends[-1]) != len(text):
        return None
    k = int(np.searchsorted(token_ends, span[0], side="right"))  # first token ending inside the span
    start, total = (int(token_ends[k - 1]) if k else 0), 0.0
    while k < len(token_ends) and start < span[1]:
        end = int(token_ends[k])
        if text[start:end].strip():
            total += float(logprobs[k])
        start, k = end, k + 1
    return float(min(1.0, math.exp(total)))
