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
Most are plain prose, so `stored_html_array` recognises in bulk (RE2, in Arrow) the texts markdown-it
would only split into paragraphs and escape (PLAIN_PARAGRAPHS) and stores PARAGRAPHS_MARK for them
instead of their HTML, which would be about as many bytes again as the text; the rest go through
markdown-it, each distinct text once. `shown_html` turns what is stored back into the page's HTML:
for the mark `paragraphs_html`, byte for byte what markdown-it writes for such a text
(prefpipe_tests/annotate/test_render.py compares the two on generated texts), cheap at any length.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
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


PARAGRAPHS_MARK = "p"
"""Stored in place of the HTML of a text that is only plain paragraphs. It is not HTML (what
markdown-it and plain_html write is empty or begins with `<`), so it is never taken for a text's
own HTML; a store that holds it is at schema version 4 (migrations.py), which older code refuses."""


def paragraphs_html(text: str) -> str:
    """markdown-it's HTML of a text that matches PLAIN_PARAGRAPHS: each paragraph in <p>, `"` escaped."""
    body = text.strip("\n").replace('"', "&quot;")
    return "<p>" + re.sub("\n\n+", "</p>\n<p>", body) + "</p>\n"


def shown_html(text: str, stored: str | None) -> str:
    """The HTML the page shows for a text and what the store holds for it (stored_html_array)."""
    if stored is None:  # queued before HTML was stored (schema version 2)
        return plain_html(text)
    return paragraphs_html(text) if stored == PARAGRAPHS_MARK else stored


def plain_paragraphs(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which texts (no nulls) are only plain paragraphs within RENDER_MAX_CHARS: Arrow's RE2, which
    runs without the GIL, so the columns of a batch can be matched at once."""
    import numpy as np
    import pyarrow.compute as pc

    plain = pc.and_(pc.match_substring_regex(texts, PLAIN_PARAGRAPHS), pc.less_equal(pc.utf8_length(texts), RENDER_MAX_CHARS))
    return np.asarray(pc.fill_null(plain, False).to_numpy(zero_copy_only=False), dtype=bool)


def stored_html_array(texts: pa.Array | pa.ChunkedArray, plain: np.ndarray | None = None) -> pa.Array:
    """What the store keeps for each text's HTML: PARAGRAPHS_MARK for plain paragraphs (`plain`, from
    plain_paragraphs when not given), else safe_html, each distinct text rendered once."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rest = np.flatnonzero(~(plain_paragraphs(texts) if plain is None else plain))
    stored = pa.repeat(pa.scalar(PARAGRAPHS_MARK, pa.large_string()), len(texts))
    if not len(rest):
        return stored
    done: dict[str, str] = {}
    others = texts.take(pa.array(rest)).to_pylist()
    for text in others:
        if text not in done:
            done[text] = safe_html(text)
    mask = np.zeros(len(texts), dtype=bool)
    mask[rest] = True
    return pc.replace_with_mask(stored, pa.array(mask), pa.array([done[t] for t in others], pa.large_string()))


def stored_html(text: str) -> str:
    """stored_html_array of one text."""
    import pyarrow as pa

    return stored_html_array(pa.array([text], pa.large_string()))[0].as_py()
