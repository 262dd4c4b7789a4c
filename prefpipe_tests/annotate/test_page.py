"""The annotator's page in a real headless chromium (Debian's, driven by Playwright).

An annotator logs in with a token, labels three items with the keyboard (one of them gold, one
with `<script>` and `<img onerror>` in a response), and the answers are in the store with
server-measured times. The page runs with its Content-Security-Policy bypassed, so the test proves
the escaping itself; a positive control shows the same browser would have fired the handler had
the markup been live.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from prefpipe.annotate.app import create_app
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import AnnotationStore
from prefpipe.core.labels import SWAP
from prefpipe_tests.annotate.conftest import RUBRIC, gold_pairs, pairs, rows

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCRIPT = '<script>window.__pwned = "script"</script>'
IMG = '<img src="x" onerror="window.__pwned = \'img\'">'

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()


def test_an_annotator_labels_three_items_with_the_keyboard(browser, data_dir):
    store = AnnotationStore(gold_policy=GoldPolicy(rate=1 / 3))  # one gold in every three served
    tasks = pairs(4)
    tasks["priority"] = [3.0, 2.0, 1.0, 0.0]
    tasks.loc[0, "response_a"] = f"Here is code:\n\n```html\n{SCRIPT}\n```\n\nand inline {SCRIPT} {IMG} **done**"
    store.enqueue("b1", tasks, per_item=1, guideline_version="v-page", rubric=RUBRIC, gold=gold_pairs(1))
    token = store.add_annotator("alice")

    with ServerThread(create_app(store)) as url:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_selector("#task-view:not([hidden])")

        seen = []
        for _ in range(3):
            prompt = page.inner_text("#prompt")
            seen.append({"prompt": prompt, "a": page.inner_text("#response-a"), "b": page.inner_text("#response-b"),
                         "version": page.inner_text("#guideline-version")})
            page.keyboard.press("2")  # A>B
            assert page.get_attribute('#labels button[data-label="A>B"]', "aria-checked") == "true"
            page.keyboard.press("Enter")
            page.wait_for_function(
                "prev => document.getElementById('prompt').innerText !== prev"
                " || !document.getElementById('message-view').hidden", arg=prompt)
        page.wait_for_function("() => document.getElementById('progress').textContent.includes('answered 3')")

        hostile = next(s for s in seen if s["prompt"] == "Prompt p0")
        shown = hostile["a"] if "Here is code" in hostile["a"] else hostile["b"]
        assert SCRIPT in shown and IMG in shown and "done" in shown  # visible as text
        assert page.evaluate("() => window.__pwned") is None
        assert page.evaluate("() => document.querySelectorAll('#task-view script, #task-view img').length") == 0
        assert {s["version"] for s in seen} == {"v-page"}
        assert not errors

        # Positive control: in this very page, live markup would have fired.
        page.evaluate(f"() => {{ const d = document.createElement('div'); d.innerHTML = {IMG!r}; document.body.append(d); }}")
        page.wait_for_function("() => window.__pwned === 'img'")
        context.close()

    frame = store.annotations("b1")
    store_rows = pd.DataFrame(rows(store, "SELECT label_shown, label, swapped FROM assignments WHERE status = 'answered'"),
                              columns=["shown", "label", "swapped"])
    store.close()
    assert len(frame) == 3 and frame["is_gold"].sum() == 1
    assert (frame["duration_s"] > 0).all() and frame["duration_s"].notna().all()
    assert (store_rows["shown"] == "A>B").all()
    assert (store_rows["label"] == [SWAP["A>B"] if s else "A>B" for s in store_rows["swapped"]]).all()
    assert set(frame["guideline_version"]) == {"v-page"}


def signed_in(browser, url: str, token: str):
    """A fresh browser context whose page has signed in with `token` and shows a task."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/")
    page.fill("#token", token)
    page.press("#token", "Enter")
    page.wait_for_selector("#task-view:not([hidden])")
    return context, page


def test_the_page_keeps_only_a_session_and_sign_out_revokes_it(browser, data_dir):
    import httpx

    store = AnnotationStore(gold_policy=GoldPolicy())
    store.enqueue("b1", pairs(2), per_item=1, guideline_version="v-page", rubric=RUBRIC)
    token = store.add_annotator("alice")
    with ServerThread(create_app(store)) as url, httpx.Client(base_url=url) as http:
        context, page = signed_in(browser, url, token)
        kept = page.evaluate("() => sessionStorage.getItem('prefpipe.token')")
        assert kept and kept != token  # the annotator's own token never stays in the browser
        assert http.get("/api/me", headers={"Authorization": f"Bearer {kept}"}).status_code == 200
        page.click("#logout")
        page.wait_for_selector("#login-view:not([hidden])")
        assert page.evaluate("() => sessionStorage.getItem('prefpipe.token')") is None
        assert http.get("/api/me", headers={"Authorization": f"Bearer {kept}"}).status_code == 401  # revoked, not just forgotten
        assert http.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        context.close()
    store.close()


SCREENSHOT_ENV = "PREFPIPE_SCREENSHOTS"
"""Set, the admin page's screenshot is also copied to docs/screenshots/ for reviewers (off in the suite)."""
REPO_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _percent(x: float) -> str:
    return f"{100 * x:.1f}".removesuffix(".0") + "%"


def _cells(page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(f"{selector} > *").all_inner_texts()]


def test_an_admin_sees_progress_and_annotators_and_unflags_one(browser, data_dir, clock, tmp_path):
    import shutil

    from prefpipe.annotate.store import iso_utc
    from prefpipe_tests.annotate import admin_scenario

    store = AnnotationStore(gold_policy=admin_scenario.POLICY, clock=clock)
    scenario = admin_scenario.build(store, clock)
    with ServerThread(create_app(store)) as url:
        context = browser.new_context(viewport={"width": 1440, "height": 900})  # the real CSP applies
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(f"{msg.text} {msg.location.get('url')}")  # a CSP refusal shows here
                if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico") else None)
        page.goto(url + "/")
        help_text = page.inner_text("#token-help")
        assert "prefpipe annotators add NAME" in help_text and "prefpipe annotators rotate NAME" in help_text
        page.fill("#token", scenario.admin_token)
        page.press("#token", "Enter")
        page.wait_for_selector("#admin-annotators-body tr")
        assert page.is_hidden("#task-view") and page.is_hidden("#login-view")
        assert page.inner_text("#progress") == "root · admin"

        for b in admin_scenario.BATCHES:
            assert _cells(page, f'#admin-batches-body tr[data-batch="{b["batch_id"]}"]') == [
                b["batch_id"], b["guideline_version"], str(b["items"]), str(b["complete"]), str(b["waiting"]),
                f"{b['answered']} / {b['labels_wanted']}", str(b["skipped"]), str(b["in_flight"]), str(b["gold_items"]),
                f"{b['gold_correct']} / {b['gold_answers']}" if b["gold_answers"] else "–"]
        report = {r["name"]: r for r in store.annotator_report()}
        for name, (role, answered, skipped, gold_answers, gold_correct, flagged, median_s) in admin_scenario.ANNOTATORS.items():
            row = report[name]
            accuracy = (f"{_percent(row['gold_accuracy'])} ({_percent(row['gold_ci_low'])}–{_percent(row['gold_ci_high'])})"
                        if gold_answers else "–")
            seen = iso_utc(scenario.last_seen[name]) if name != "root" else row["last_seen_at"]  # root: the page's sign-in
            cells = _cells(page, f'#admin-annotators-body tr[data-annotator="{name}"]')
            assert cells[:8] == [name, role, str(answered), str(skipped), f"{gold_correct} / {gold_answers}" if gold_answers else "–",
                                 accuracy, "–" if median_s is None else f"{median_s:g} s",
                                 f"{seen[:10]} {seen[11:19]} UTC"], name
            assert cells[8].startswith("flagged") == flagged, name
        assert _cells(page, '#admin-annotators-body tr[data-annotator="carol"]')[5] == "50% (9.5%–90.5%)"
        assert "gold accuracy 0%" in page.inner_text('tr[data-annotator="bob"] td.flag')
        assert page.locator("button.unflag").count() == 1

        shot = tmp_path / "admin-page.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get(SCREENSHOT_ENV):
            REPO_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, REPO_SCREENSHOTS / "admin-page.png")

        page.click('tr[data-annotator="bob"] button.unflag')
        page.wait_for_function("() => document.querySelector('tr[data-annotator=\"bob\"] td.flag').textContent === 'no'")
        assert page.locator("button.unflag").count() == 0
        assert page.get_attribute('tr[data-annotator="bob"]', "class") in (None, "")
        assert not errors
        context.close()
    assert not next(r for r in store.list_annotators() if r["name"] == "bob")["flagged"]
    store.close()


def test_an_annotator_does_not_see_the_admin_view(browser, data_dir):
    store = AnnotationStore(gold_policy=GoldPolicy())
    store.enqueue("b1", pairs(2), per_item=1, guideline_version="v-page", rubric=RUBRIC)
    token = store.add_annotator("alice")
    with ServerThread(create_app(store)) as url:
        context, page = signed_in(browser, url, token)
        assert page.is_hidden("#admin-view")
        assert page.locator("#admin-batches-body tr, #admin-annotators-body tr").count() == 0
        statuses = page.evaluate("""async () => {
            const headers = {Authorization: "Bearer " + sessionStorage.getItem("prefpipe.token")};
            return Promise.all(["/api/admin/batches", "/api/admin/annotators"].map(async (p) => (await fetch(p, {headers})).status));
        }""")
        assert statuses == [403, 403]
        context.close()
    store.close()
