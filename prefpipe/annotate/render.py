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

Queueing a million pairs renders about a million texts, at about 40 us each through markdown-it.
Most are plain prose, so `safe_html_array` recognises in bulk the texts markdown-it would only split
into paragraphs and escape (PLAIN_PARAGRAPHS), escapes and wraps those with Arrow's string kernels,
byte for byte as markdown-it writes them (prefpipe_tests/annotate/test_render.py compares the two
on generated texts), and sends only the rest through markdown-it, each distinct text once.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


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


_INERT = r"[^\p{Cc}\p{Z}!#&*<>\[\\\]_`|~]"
"""A character no markdown rule acts on (in this configuration) and no control or separator
character: of the whitespace, lines take only the space, and only between characters like this."""
_PLAIN_LINE = rf"\pL(?:(?:{_INERT}| )*{_INERT})?"
PLAIN_PARAGRAPHS = rf"^\n*{_PLAIN_LINE}(?:\n+{_PLAIN_LINE})*\n*$"
"""Text that is only paragraphs of prose (an RE2 pattern, for Arrow): lines that begin with a letter
(no list, heading, quote, fence or indented code can start there), end on a non-space (no hard
break) and hold no character of emphasis, code, links, entities, escapes, HTML, tables or
strikethrough; one newline apart within a paragraph, two or more between paragraphs. markdown-it
renders such a text as `<p>...</p>` per paragraph, with `"` escaped and the rest as written."""


def safe_html_array(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """safe_html of each text (no nulls), in bulk: plain paragraphs escaped and wrapped by Arrow,
    the rest through markdown-it, each distinct text once. Chunks stay chunks (no copy of the texts
    to join them); give large_string past 2 GB of text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    plain = pc.fill_null(pc.and_(pc.match_substring_regex(texts, PLAIN_PARAGRAPHS),
                                 pc.less_equal(pc.utf8_length(texts), RENDER_MAX_CHARS)), False)
    plain = plain.combine_chunks() if isinstance(plain, pa.ChunkedArray) else plain  # a mask is one array
    paragraphs = texts  # each rewrite copies every text: skipped when no text has a quote or a newline
    if any(pc.any(pc.match_substring(texts, c)).as_py() for c in '"\n'):
        paragraphs = pc.replace_substring_regex(pc.replace_substring(pc.utf8_trim(texts, "\n"), '"', "&quot;"), "\n\n+", "</p>\n<p>")
    open_p, close_p, nothing = (pa.scalar(t, texts.type) for t in ("<p>", "</p>\n", ""))  # string or large_string, as given
    wrapped = pc.binary_join_element_wise(open_p, paragraphs, close_p, nothing)
    rest = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    if not len(rest):
        return wrapped
    done: dict[str, str] = {}
    others = texts.take(pa.array(rest)).to_pylist()
    for text in others:
        if text not in done:
            done[text] = safe_html(text)
    return pc.replace_with_mask(wrapped, pc.invert(plain), pa.array([done[t] for t in others], wrapped.type))
