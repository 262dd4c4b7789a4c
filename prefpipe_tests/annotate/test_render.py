"""Responses render as markdown with every tag in them shown as text."""

from __future__ import annotations

import httpx

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


def test_past_the_cap_a_text_is_plain_escaped_text_not_parsed(monkeypatch):
    from prefpipe.annotate import render

    monkeypatch.setattr(render, "RENDER_MAX_CHARS", 20)
    assert render.safe_html("**bold** <b>") == render.to_html("**bold** <b>")
    long = "**not bold** <script>x</script> " * 2
    assert render.safe_html(long) == '<pre class="plain">**not bold** &lt;script&gt;x&lt;/script&gt; **not bold** '\
                                     '&lt;script&gt;x&lt;/script&gt; </pre>'


def test_html_is_rendered_once_when_queued_and_served_from_the_store(store, monkeypatch):
    from prefpipe.annotate import render
    from prefpipe_tests.annotate.conftest import enqueue, pairs

    tasks = pairs(1)
    tasks.loc[0, "prompt"] = "[" * 1_000_000  # 13 s of markdown-it: past the cap, never parsed
    tasks.loc[0, "response_a"] = "**A** wins"
    enqueue(store, "b1", tasks, per_item=1)
    monkeypatch.setattr(render, "_markdown", _no_rendering_now)
    task = store.next_task(store.authenticate(store.add_annotator("ann")))
    assert task.rendered["prompt"] == '<pre class="plain">' + "[" * 1_000_000 + "</pre>"
    shown = {task.rendered["response_a"], task.rendered["response_b"]}
    assert shown == {"<p><strong>A</strong> wins</p>\n", "<p>Response p0 side b</p>\n"}
    assert (task.rendered["response_a"] == "<p><strong>A</strong> wins</p>\n") == (task.response_a == "**A** wins")


def _no_rendering_now():
    raise AssertionError("markdown rendered while serving")


def test_a_pathological_prompt_never_holds_up_other_requests(store, live, http, monkeypatch):
    """The task with 1 MB of `[` is served while /api/health answers; nothing is rendered on the
    request path (a renderer that blocks until released would stall the event loop if it were)."""
    import threading

    from prefpipe.annotate import render
    from prefpipe_tests.annotate.conftest import auth, enqueue, pairs

    tasks = pairs(1)
    tasks.loc[0, "prompt"] = "[" * 1_000_000
    enqueue(store, "b1", tasks, per_item=1)
    token = store.add_annotator("ann")
    released, progressed, calls = threading.Event(), threading.Event(), []

    class Stuck:
        def render(self, text: str) -> str:
            calls.append(threading.current_thread().name)
            progressed.set()
            released.wait(20)
            return ""

    def fetch() -> None:
        try:
            served.append(http.get("/api/tasks/next?render=html", headers=auth(token)))
        finally:
            progressed.set()

    monkeypatch.setattr(render, "_markdown", lambda: Stuck())
    served: list = []
    slow = threading.Thread(target=fetch)
    slow.start()
    try:
        assert progressed.wait(30)  # the task was served, or its rendering began on the request path
        with httpx.Client(base_url=live, timeout=5) as other:
            assert other.get("/api/health").json() == {"ok": True}
    finally:
        released.set()
        slow.join(timeout=30)
    assert calls == []
    [response] = served
    assert response.status_code == 200 and response.json()["rendered"]["prompt"].startswith('<pre class="plain">[[[')


def generated_texts(n: int, seed: int = 7) -> list[str]:
    """Texts built from prose and from every character markdown or the bulk path treats apart:
    emphasis, code, links, entities, escapes, HTML, tables, lists, headings, quotes, breaks, odd
    whitespace and control characters, at line starts, line ends and in between."""
    import random

    rng = random.Random(seed)
    words = ["the", "Model", "answer", "2026", "e-mail", "x+y=z", "50%", "$5", "a@b", "{x}", "(note)", "q?", "a:b", "'s", '"quoted"',
             "é", "中文", "\U0001F600", "end."]
    odd = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["\t", "\r", "\r\n", "\0", "\x0b", "\x0c", "\u00a0", "\u2028", "\u200d", "\ufeff",
                                                       "  \n", " \n", "\n ", "\n\n", "\n\n\n", "    ", "1. ", "- ", "> ", "# ", "&amp;",
                                                       "&copy;", "<b>", "***", "---", "===", "| a | b |\n|---|---|"]
    texts = ["", " ", "\n", "plain", "Plain text.", "Two\nlines", "Para one.\n\nPara two.\n", "\n\nLeading and trailing\n\n",
             'He said "hi"', "trailing space ", " leading space", "Tab\tinside", "**bold**", "[x](javascript:alert(1))", "a < b"]
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            pick = rng.random()
            parts.append(rng.choice(odd) if pick < 0.15 else "\n" if pick < 0.25 else "\n\n" if pick < 0.3 else rng.choice(words))
        sep = "" if rng.random() < 0.3 else " "
        texts.append(rng.choice(["", "A", "Z", "é"]) + sep.join(parts))
    return texts


def test_bulk_rendering_is_byte_for_byte_what_markdown_it_renders():
    import pyarrow as pa

    from prefpipe.annotate import render

    texts = generated_texts(6_000)
    expected = [render.safe_html(t) for t in texts]
    for kind in (pa.string(), pa.large_string()):
        stored = render.stored_html_array(pa.array(texts, kind)).to_pylist()
        assert [render.shown_html(t, s) for t, s in zip(texts, stored)] == expected
    plain = render.plain_paragraphs(pa.array(texts))
    assert 1_000 < plain.sum() < len(texts) - 1_000  # both paths are exercised
    assert [render.paragraphs_html(t) for t, p in zip(texts, plain) if p] == [e for e, p in zip(expected, plain) if p]
    assert set(stored[i] for i in plain.nonzero()[0]) == {render.PARAGRAPHS_MARK}
    assert not any(e == render.PARAGRAPHS_MARK for e in expected)  # the mark is never a text's own HTML


def test_bulk_rendering_escapes_hostile_html_and_honours_the_cap(monkeypatch):
    import pyarrow as pa

    from prefpipe.annotate import render

    monkeypatch.setattr(render, "RENDER_MAX_CHARS", 20)
    texts = [HOSTILE, "short plain text", "a plain text longer than twenty characters", "**not bold** <script>x</script> " * 2]
    stored = render.stored_html_array(pa.chunked_array([pa.array(texts[:2]), pa.array(texts[2:])])).to_pylist()
    assert stored[1] == render.PARAGRAPHS_MARK and stored[2] == '<pre class="plain">a plain text longer than twenty characters</pre>'
    assert [render.shown_html(t, s) for t, s in zip(texts, stored)] == [render.safe_html(t) for t in texts]
    assert render.stored_html_array(pa.array([], pa.string())).to_pylist() == []
    assert render.shown_html("<b>x</b>", None) == "<pre class=\"plain\">&lt;b&gt;x&lt;/b&gt;</pre>"  # stored before HTML was
