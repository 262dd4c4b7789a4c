"""Responses render as markdown with every tag in them shown as text."""

from __future__ import annotations

from prefpipe.annotate.render import to_html

HOSTILE = (
    'Sure! <script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">\n\n'
    "[click](javascript:alert(1)) ![track](https://example.com/pixel.png) <a href=\"https://e.com\">raw</a>\n\n"
    "```python\nprint('<b>hi</b>')\n```\n"
)


def test_html_in_a_response_is_escaped_not_rendered():
    html = to_html(HOSTILE)
    for tag in ("<script", "<img", "onerror=\"", "href=\"javascript", "<a href=\"https://e.com\">raw"):
        assert tag not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;window.__pwned = 2&quot;&gt;" in html


def test_markdown_and_code_blocks_render():
    html = to_html("**bold** and `x < y`\n\n```python\nprint('<b>hi</b>')\n```\n\n- one\n- two\n\n[docs](https://example.com)")
    assert "<strong>bold</strong>" in html and "<code>x &lt; y</code>" in html
    assert '<pre><code class="language-python">print(\'&lt;b&gt;hi&lt;/b&gt;\')' in html
    assert "<li>one</li>" in html
    assert '<a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">docs</a>' in html
