"""Model responses as safe HTML: markdown and code blocks rendered, any HTML in them shown as text.

Uses markdown-it-py (CommonMark) with raw HTML turned off, so `<script>` or `<img onerror>` in a
response comes out escaped, as visible text; its link validator already refuses javascript:,
vbscript:, file: and data: URLs. Images are turned off (a response must not make the annotator's
browser fetch anything), and links open in a new tab without a referrer. The page also sends a
Content-Security-Policy that forbids inline script, as a second wall.

Rendering is slow on pathological input (about 12 us a character for a run of `[`: a 1 MB prompt
takes 13 s), so it never runs on a request: the store renders each text once, when its pair is
queued, and serves the stored HTML. Past RENDER_MAX_CHARS a text is not parsed at all but shown
escaped, as plain text, which bounds the work of queueing one text to well under a second.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").enable("strikethrough").disable("image")

    def link_open(renderer: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("target", "_blank")
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


RENDER_MAX_CHARS = 50_000
"""Longer texts are shown as escaped plain text instead of markdown (0.7 s at worst to render)."""


def to_html(text: str) -> str:
    """Markdown to HTML with every tag of the source escaped."""
    return _markdown().render(text)


def plain_html(text: str) -> str:
    """The text exactly as written, escaped: cheap at any length."""
    return f'<pre class="plain">{html.escape(text, quote=False)}</pre>'


def safe_html(text: str) -> str:
    """What the page shows for a text: its markdown rendered, or plain text past RENDER_MAX_CHARS."""
    return to_html(text) if len(text) <= RENDER_MAX_CHARS else plain_html(text)
