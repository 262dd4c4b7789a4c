"""Model responses as safe HTML: markdown and code blocks rendered, any HTML in them shown as text.

Uses markdown-it-py (CommonMark) with raw HTML turned off, so `<script>` or `<img onerror>` in a
response comes out escaped, as visible text; its link validator already refuses javascript:,
vbscript:, file: and data: URLs. Images are turned off (a response must not make the annotator's
browser fetch anything), and links open in a new tab without a referrer. The page also sends a
Content-Security-Policy that forbids inline script, as a second wall.
"""

from __future__ import annotations

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


def to_html(text: str) -> str:
    """Markdown to HTML with every tag of the source escaped."""
    return _markdown().render(text)
