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
