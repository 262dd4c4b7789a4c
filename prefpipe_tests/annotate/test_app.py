"""The JSON API on a live server over loopback: every rule of the issue."""

from __future__ import annotations

import re

import httpx
import pytest
import sqlalchemy as sa

from prefpipe.annotate.app import create_app
from prefpipe.annotate.gold import GoldPolicy
from prefpipe.annotate.server import ServerThread
from prefpipe.annotate.store import AnnotationStore
from prefpipe.core.labels import SWAP
from prefpipe_tests.annotate import admin_scenario
from prefpipe_tests.annotate.conftest import BACKENDS, RUBRIC, VERSION, auth, enqueue, gold_pairs, pairs, rows

TASK_KEYS = ["task_id", "prompt", "response_a", "response_b", "rubric", "guideline_version"]
XSS_RESPONSE = 'Try this: <script>window.__pwned = "script"</script> or <img src=x onerror="window.__pwned = \'img\'">'


def honest(task: dict) -> str:
    return "A>B" if task["response_a"].endswith("side a") else "B>A"


def test_wrong_or_missing_token_is_401(store, http):
    token = store.add_annotator("ann")
    for headers in ({}, auth("pp_not-a-token"), {"Authorization": f"Basic {token}"}, {"Authorization": "Bearer"}):
        for method, path in (("GET", "/api/tasks/next"), ("GET", "/api/me"), ("POST", "/api/tasks/x/annotations")):
            r = http.request(method, path, headers=headers, json={"label": "A>B"} if method == "POST" else None)
            assert r.status_code == 401, (headers, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    store.disable("ann")
    assert http.get("/api/tasks/next", headers=auth(token)).status_code == 401


def test_next_task_has_exactly_the_promised_fields_then_204(store, http):
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    r = http.get("/api/tasks/next", headers=auth(token))
    assert r.status_code == 200
    task = r.json()
    assert list(task) == TASK_KEYS
    assert task["guideline_version"] == VERSION
    assert [d["name"] for d in task["rubric"]] == [d["name"] for d in RUBRIC]
    assert {task["response_a"], task["response_b"]} == {"Response p0 side a", "Response p0 side b"}
    assert http.get("/api/tasks/next", headers=auth(token)).json() == task  # same open task until answered
    assert http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json={"label": "A=B"}).status_code == 201
    r = http.get("/api/tasks/next", headers=auth(token))
    assert r.status_code == 204 and r.content == b""


def test_label_in_the_annotators_view_is_mapped_back(store, http):
    enqueue(store, "b1", pairs(30), per_item=1)
    token = store.add_annotator("ann")
    orders = {}
    for _ in range(30):
        task = http.get("/api/tasks/next", headers=auth(token)).json()
        body = {"label": "A>>B", "dimensions": {"helpfulness": {"A": 5, "B": 1}}}
        r = http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json=body)
        assert r.status_code == 201
        orders[task["prompt"].split()[-1]] = task["response_a"].endswith("side a")
    assert 0 < sum(orders.values()) < 30
    frame = store.annotations("b1").set_index("pair_id")
    for pair_id, own_order in orders.items():
        assert frame.loc[pair_id, "label"] == ("A>>B" if own_order else SWAP["A>>B"])


def test_another_annotators_task_is_404(store, http):
    enqueue(store, "b1", pairs(2), per_item=2)
    mine, theirs = store.add_annotator("mine"), store.add_annotator("theirs")
    task = http.get("/api/tasks/next", headers=auth(theirs)).json()
    for path, body in (("annotations", {"label": "A>B"}), ("skip", {"reason": "x"})):
        r = http.post(f"/api/tasks/{task['task_id']}/{path}", headers=auth(mine), json=body)
        assert r.status_code == 404 and r.json() == {"detail": "no such task"}
    assert http.post("/api/tasks/made-up/annotations", headers=auth(mine), json={"label": "A>B"}).status_code == 404
    assert store.annotations("b1").empty


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"label": "A>C"}, ["body", "label"]),
        ({"label": 3}, ["body", "label"]),
        ({}, ["body", "label"]),
        ({"label": "A>B", "duration_s": 0.1}, ["body", "duration_s"]),
        ({"label": "A>B", "dimensions": {"tone": {"A": 3}}}, ["body", "dimensions", "tone"]),
        ({"label": "A>B", "dimensions": {"helpfulness": {"A": 0}}}, ["body", "dimensions", "helpfulness", "A"]),
        ({"label": "A>B", "dimensions": ["helpfulness"]}, ["body", "dimensions"]),
    ],
)
def test_bad_bodies_are_422_naming_the_field(store, http, body, loc):
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    r = http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json=body)
    assert r.status_code == 422
    assert loc in [d["loc"] for d in r.json()["detail"]], r.json()
    assert store.annotations("b1").empty


def test_malformed_json_and_empty_skip_reason_are_422(store, http):
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    r = http.post(f"/api/tasks/{task['task_id']}/annotations", headers={**auth(token), "Content-Type": "application/json"},
                  content=b'{"label": "A>B",')
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"
    for reason in ("", "   "):
        r = http.post(f"/api/tasks/{task['task_id']}/skip", headers=auth(token), json={"reason": reason})
        assert r.status_code == 422 and ["body", "reason"] in [d["loc"] for d in r.json()["detail"]]


def test_second_answer_is_refused_and_the_first_stands(store, http):
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    url = f"/api/tasks/{task['task_id']}/annotations"
    assert http.post(url, headers=auth(token), json={"label": "A>>B"}).status_code == 201
    assert http.post(url, headers=auth(token), json={"label": "B>>A"}).status_code == 409
    assert http.post(f"/api/tasks/{task['task_id']}/skip", headers=auth(token), json={"reason": "x"}).status_code == 409
    frame = store.annotations("b1")
    assert len(frame) == 1 and frame["label"][0] in ("A>>B", "B>>A")
    shown = rows(store, "SELECT label_shown FROM assignments")
    assert shown == [("A>>B",)]


def test_skip_and_progress(store, http):
    enqueue(store, "b1", pairs(3), per_item=1)
    token = store.add_annotator("ann")
    assert http.get("/api/me", headers=auth(token)).json() == {
        "name": "ann", "role": "annotator", "flagged": False, "answered": 0, "skipped": 0, "in_progress": 0,
    }
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    r = http.post(f"/api/tasks/{task['task_id']}/skip", headers=auth(token), json={"reason": "prompt unclear"})
    assert r.status_code == 200 and r.json()["skipped"] == 1
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    assert http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json={"label": "A=B"}).json()["answered"] == 1
    me = http.get("/api/me", headers=auth(token)).json()
    assert (me["answered"], me["skipped"], me["in_progress"]) == (1, 1, 0)


def test_time_on_task_is_measured_by_the_server(store, http, clock):
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    clock.advance(12.5)
    http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json={"label": "A=B"})
    assert store.annotations("b1")["duration_s"].tolist() == [12.5]


def test_admin_endpoints(store, http):
    enqueue(store, "b1", pairs(2), per_item=1)
    admin, ann = store.add_annotator("root", "admin"), store.add_annotator("ann")
    assert http.get("/api/admin/annotators", headers=auth(ann)).status_code == 403
    assert http.post("/api/admin/annotators/ann/unflag", headers=auth(ann)).status_code == 403
    assert http.get("/api/tasks/next", headers=auth(admin)).status_code == 403
    rows = http.get("/api/admin/annotators", headers=auth(admin)).json()
    assert [r["name"] for r in rows] == ["ann", "root"]
    assert {"gold_accuracy", "gold_answers", "flagged", "flag_reason", "disabled"} <= rows[0].keys()
    assert http.post("/api/admin/annotators/nobody/unflag", headers=auth(admin)).status_code == 404


ADMIN_ENDPOINTS = [("GET", "/api/admin/annotators"), ("GET", "/api/admin/batches"), ("POST", "/api/admin/annotators/bob/unflag")]


def test_every_admin_endpoint_is_403_for_annotators_and_experts(store, http):
    enqueue(store, "b1", pairs(2), per_item=1)
    tokens = [store.add_annotator("ann"), store.add_annotator("expert", "expert"), store.add_annotator("root", "admin")]
    session = http.post("/api/login", headers=auth(tokens[0])).json()["token"]
    for token in (*tokens[:2], session):
        for method, path in ADMIN_ENDPOINTS:
            r = http.request(method, path, headers=auth(token))
            assert r.status_code == 403 and r.json() == {"detail": "admins only"}, (method, path)
    for method, path in ADMIN_ENDPOINTS[:2]:
        assert http.request(method, path, headers=auth(tokens[2])).status_code == 200, path
        assert http.request(method, path).status_code == 401, path


@pytest.mark.parametrize("backend", BACKENDS)  # the reports are read on a connection of their own: both kinds
def test_the_admin_figures_over_the_api(store_at, clock):
    with store_at("admin", gold_policy=admin_scenario.POLICY, clock=clock) as store:
        scenario = admin_scenario.build(store, clock)
        with ServerThread(create_app(store)) as url, httpx.Client(base_url=url) as http:
            batches = http.get("/api/admin/batches", headers=auth(scenario.admin_token)).json()
            assert [{k: v for k, v in b.items() if k != "updated_at"} for b in batches] == admin_scenario.BATCHES
            report = {r["name"]: r for r in http.get("/api/admin/annotators", headers=auth(scenario.admin_token)).json()}
            assert {name: (r["role"], r["answered"], r["skipped"], r["gold_answers"], r["gold_correct"], r["flagged"],
                           r["median_time_on_task_s"]) for name, r in report.items()} == admin_scenario.ANNOTATORS
            assert 0 < report["dave"]["gold_ci_low"] < 1 == report["dave"]["gold_ci_high"]
            r = http.post("/api/admin/annotators/bob/unflag", headers=auth(scenario.admin_token))
            assert r.json() == {"name": "bob", "flagged": False}
            bob = next(r for r in http.get("/api/admin/annotators", headers=auth(scenario.admin_token)).json() if r["name"] == "bob")
            assert not bob["flagged"]
            task = http.get("/api/tasks/next", headers=auth(scenario.annotator_tokens["bob"]))
            assert task.status_code == 200 and task.json()["prompt"] == "Prompt p2"  # no longer paused: p2 wants a label


def test_flagged_at_once_stops_tasks_and_admins_see_why(data_dir, clock):
    with AnnotationStore(data_dir / "f.sqlite3", gold_policy=GoldPolicy(rate=1.0), clock=clock) as store, \
            ServerThread(create_app(store)) as url, httpx.Client(base_url=url) as http:
        enqueue(store, "b1", pairs(10), per_item=1, gold=gold_pairs(6))
        admin, ann = store.add_annotator("root", "admin"), store.add_annotator("ann")
        for i in range(5):
            task = http.get("/api/tasks/next", headers=auth(ann)).json()
            r = http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(ann), json={"label": SWAP[honest(task)]})
            assert r.status_code == 201
            assert http.get("/api/me", headers=auth(ann)).json()["flagged"] == (i == 4)
        r = http.get("/api/tasks/next", headers=auth(ann))
        assert r.status_code == 403 and r.json()["flagged"] is True
        assert "gold" not in r.json()["detail"]  # the annotator is not told how they were caught
        row = next(x for x in http.get("/api/admin/annotators", headers=auth(admin)).json() if x["name"] == "ann")
        assert row["flagged"] and row["gold_accuracy"] == 0.0 and "under 60%" in row["flag_reason"]
        assert store.annotations("b1")["flagged"].all()
        assert http.post("/api/admin/annotators/ann/unflag", headers=auth(admin)).json() == {"name": "ann", "flagged": False}
        assert http.get("/api/tasks/next", headers=auth(ann)).status_code == 200


class _Trace:
    """The SQL statements the store sends while the block runs (parameters apart, so the shape)."""

    def __init__(self, store: AnnotationStore) -> None:
        self.engine, self.statements = store.engine, []

    def _record(self, _conn, _cursor, statement, *_rest) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        self.statements.append(statement)

    def __enter__(self) -> list[str]:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self.statements

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


def _shape(statements: list[str]) -> list[str]:
    """Statements with literals and ids blanked, to compare the work done, not the values."""
    return [re.sub(r"'[^']*'|\bNULL\b|\b\d+(\.\d+)?\b", "?", s) for s in statements]


def test_gold_tasks_are_indistinguishable_from_real_ones(data_dir, clock):
    """Same fields, same id shape, the batch's own rubric and version, same headers, and the very
    same database work (so the same latency) when served and when answered."""
    with AnnotationStore(data_dir / "g.sqlite3", gold_policy=GoldPolicy(rate=0.5), clock=clock) as store, \
            ServerThread(create_app(store)) as url, httpx.Client(base_url=url) as http:
        enqueue(store, "pool", pairs(0), gold=gold_pairs(20), version="gold-pool-version", gold_scope="global")
        enqueue(store, "b1", pairs(40), per_item=1)
        token = store.add_annotator("ann")
        gold_prompts = {f"Prompt g{i}" for i in range(20)}
        served: dict[bool, list] = {True: [], False: []}
        for i in range(40):
            with _Trace(store) as work:
                r = http.get("/api/tasks/next", headers=auth(token))
            serve_work = _shape(work)
            me = http.get("/api/me", headers=auth(token)).json()  # nothing there moves differently for gold
            assert (me["answered"], me["in_progress"], me["skipped"], me["flagged"]) == (i, 1, 0, False)
            task = r.json()
            with _Trace(store) as work:
                answer = http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json={"label": honest(task)})
            answer_work = _shape(work)
            served[task["prompt"] in gold_prompts].append((r, task, serve_work, answer, answer_work))
        assert len(served[True]) >= 5 and len(served[False]) >= 5
        (g_resp, g_task, g_serve, g_ans, g_ans_work), (n_resp, n_task, n_serve, n_ans, n_ans_work) = served[True][1], served[False][1]
        assert list(g_task) == list(n_task) == TASK_KEYS
        assert g_task["rubric"] == n_task["rubric"] and g_task["guideline_version"] == n_task["guideline_version"] == VERSION
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", g_task["task_id"]) and re.fullmatch(r"[A-Za-z0-9_-]{22}", n_task["task_id"])
        drop = {"date", "content-length"}
        assert {k: v for k, v in g_resp.headers.items() if k not in drop} == {k: v for k, v in n_resp.headers.items() if k not in drop}
        assert g_serve == n_serve and len(g_serve) > 5
        assert g_ans.status_code == n_ans.status_code == 201 and list(g_ans.json()) == list(n_ans.json())
        assert g_ans_work == n_ans_work


def test_script_and_img_onerror_in_a_response_are_data_not_markup(store, http):
    hostile = pairs(1)
    hostile.loc[0, "response_a"] = XSS_RESPONSE
    enqueue(store, "b1", hostile, per_item=1)
    token = store.add_annotator("ann")
    task = http.get("/api/tasks/next?render=html", headers=auth(token)).json()
    assert XSS_RESPONSE in (task["response_a"], task["response_b"])  # the text itself is kept exactly
    rendered = " ".join(task["rendered"].values())
    assert "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;" in rendered and "onerror=&quot;" in rendered
    page = http.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script src=\"/static/app.js\"></script>" in page.text


def test_the_app_never_opens_the_warehouse(store, http, data_dir):
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    task = http.get("/api/tasks/next", headers=auth(token)).json()
    http.post(f"/api/tasks/{task['task_id']}/annotations", headers=auth(token), json={"label": "A>B"})
    assert not any(p.name.startswith("warehouse") for p in data_dir.iterdir())
