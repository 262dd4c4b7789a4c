"""Tokens that expire, sessions the page signs out of for real, rotation, and no public API map
(issue item 7), over a live server on loopback, on both store backends."""

from __future__ import annotations

import httpx
import pytest

from prefpipe.annotate.app import create_app
from prefpipe.annotate.errors import AnnotatorError
from prefpipe.annotate.server import ServerThread
from prefpipe_tests.annotate.conftest import BACKENDS, auth

DAY = 24 * 3600.0


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def me(http: httpx.Client, token: str) -> httpx.Response:
    return http.get("/api/me", headers=auth(token))


def login(http: httpx.Client, token: str) -> str:
    r = http.post("/api/login", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_a_token_expires_after_thirty_days_and_the_401_says_so(store, http, clock):
    token = store.add_annotator("ann")
    clock.advance(30 * DAY - 1)
    assert me(http, token).status_code == 200
    clock.advance(2)
    r = me(http, token)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "this token expired at" in r.json()["detail"] and "rotate" in r.json()["detail"]
    short = store.add_annotator("tmp", ttl_s=3600)  # the lifetime is the issuer's choice
    clock.advance(3601)
    assert "expired" in me(http, short).json()["detail"]


def test_logout_revokes_the_session_and_the_token_still_signs_in(store, http, clock):
    token = store.add_annotator("ann")
    session = login(http, token)
    assert session != token and me(http, session).json()["name"] == "ann"
    assert http.post("/api/logout", headers=auth(session)).status_code == 204
    r = me(http, session)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert me(http, token).status_code == 200
    again = login(http, token)
    assert http.post("/api/login", headers=auth(again)).status_code == 400  # a session does not make sessions
    clock.advance(12 * 3600 + 1)
    r = me(http, again)
    assert r.status_code == 401 and "session expired" in r.json()["detail"] and "sign in again" in r.json()["detail"]
    assert me(http, token).status_code == 200


def test_a_session_never_outlives_its_token(store, http, clock):
    token = store.add_annotator("ann", ttl_s=3600)
    session = login(http, token)
    clock.advance(3601)
    assert me(http, session).status_code == 401


def test_logout_with_the_token_itself_revokes_it_and_every_session(store, http):
    token = store.add_annotator("ann")
    session = login(http, token)
    assert http.post("/api/logout", headers=auth(token)).status_code == 204
    assert me(http, token).status_code == 401 and me(http, session).status_code == 401


def test_rotation_gives_a_new_token_and_the_old_one_stops_working(store, http):
    old = store.add_annotator("ann")
    session = login(http, old)
    new = store.rotate_token("ann")
    assert new != old
    assert me(http, old).status_code == 401 and me(http, session).status_code == 401
    assert me(http, new).json()["name"] == "ann"
    with pytest.raises(AnnotatorError, match="no annotator"):
        store.rotate_token("nobody")


def test_disabled_accounts_sessions_stop_too(store, http):
    token = store.add_annotator("ann")
    session = login(http, token)
    store.disable("ann")
    r = me(http, session)
    assert r.status_code == 401 and "disabled" in r.json()["detail"]


def test_the_api_map_is_off_by_default_and_for_admins_only_when_on(store, http):
    admin, ann = store.add_annotator("root", "admin"), store.add_annotator("ann")
    for path in ("/api/openapi.json", "/docs", "/redoc", "/openapi.json", "/api/docs"):
        assert http.get(path, headers=auth(admin)).status_code in (401, 404), path
    with ServerThread(create_app(store, openapi=True)) as url, httpx.Client(base_url=url) as on:
        assert on.get("/api/openapi.json").status_code == 401
        assert on.get("/api/openapi.json", headers=auth(ann)).status_code == 403
        schema = on.get("/api/openapi.json", headers=auth(admin)).json()
        assert "/api/tasks/next" in schema["paths"] and "/api/login" in schema["paths"]
