"""Request limits on a live server over loopback: the token before the body, a body cap for bodies
with and without Content-Length, 422s that never echo what was sent, and requests in flight per
annotator (issue item 4)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from prefpipe.annotate.app import create_app
from prefpipe.annotate.server import ServerThread
from prefpipe_tests.annotate.conftest import auth, enqueue, pairs

MB = 1 << 20


class Partial:
    """A request sent with only part of its body: it stays in flight until `finish` sends the rest,
    unless the server answers without waiting for the body."""

    def __init__(self, url: str, path: str, headers: dict[str, str], body: bytes, sent: int) -> None:
        where = urlsplit(url)
        lines = [f"POST {path} HTTP/1.1", f"Host: {where.netloc}", "Content-Type: application/json",
                 f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock = socket.create_connection((where.hostname, where.port), timeout=10)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body[:sent])
        self.rest = body[sent:]

    def answered_early(self) -> bool:
        self.sock.setblocking(False)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return False
        finally:
            self.sock.setblocking(True)

    def status(self, send_rest: bool = True) -> str:
        """The response's status code; a server that waits for the rest first times out here."""
        if send_rest:
            self.sock.sendall(self.rest)
        with self.sock, self.sock.makefile("rb") as reply:
            return reply.readline().decode().split()[1]


def answered_before_the_body(url: str, path: str, headers: dict[str, str], size: int) -> str:
    return Partial(url, path, headers, b" " * size, 64 * 1024).status(send_rest=False)


def open_task(store, http) -> tuple[str, str]:
    enqueue(store, "b1", pairs(1), per_item=1)
    token = store.add_annotator("ann")
    return token, http.get("/api/tasks/next", headers=auth(token)).json()["task_id"]


def test_no_or_unknown_token_is_401_before_the_body_is_read(store, live, http):
    _token, task_id = open_task(store, http)
    path = f"/api/tasks/{task_id}/annotations"
    for headers in ({}, auth("pp_not-a-token")):
        assert answered_before_the_body(live, path, headers, 4 * MB) == "401"
        r = http.post(path, headers={**headers, "Content-Type": "application/json"}, content=b"{" + b" " * (3 * MB))
        assert r.status_code == 401 and len(r.content) < 500
    assert store.annotations("b1").empty


def test_a_body_over_one_mib_is_413_with_or_without_content_length(store, live, http):
    token, task_id = open_task(store, http)
    path = f"/api/tasks/{task_id}/annotations"
    assert answered_before_the_body(live, path, auth(token), 3 * MB) == "413"
    big = b'{"label": "A>B", "pad": "' + b"x" * (3 * MB) + b'"}'
    r = http.post(path, headers={**auth(token), "Content-Type": "application/json"}, content=big)
    assert r.status_code == 413 and "Content Too Large" in r.text  # FastAPI's own max_body_size

    def chunked() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    r = http.post(path, headers={**auth(token), "Content-Type": "application/json"}, content=chunked())
    assert r.status_code == 413
    r = http.post(f"/api/tasks/{task_id}/skip", headers=auth(token), json={"reason": "r" * (2 * MB)})
    assert r.status_code == 413
    assert store.annotations("b1").empty
    under = {"label": "A>B", "dimensions": {"helpfulness": {"A": 4}}, "pad": "x" * (MB // 2)}
    assert http.post(path, headers=auth(token), json=under).status_code == 422  # read and judged, not refused
    assert http.post(path, headers=auth(token), json={"label": "A>B"}).status_code == 201


def test_the_body_limit_is_configurable(store):
    with ServerThread(create_app(store, limits=_limits(max_body_bytes=1000))) as url, httpx.Client(base_url=url) as http:
        token, task_id = open_task(store, http)
        r = http.post(f"/api/tasks/{task_id}/skip", headers=auth(token), json={"reason": "r" * 1000})
        assert r.status_code == 413
        assert http.post(f"/api/tasks/{task_id}/skip", headers=auth(token), json={"reason": "short"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"label": "Q" * 300_000}, ["body", "label"]),
        ({"label": "A>B", "Q" * 300_000: 1}, ["body", "Q" * 64 + "…"]),
        ({"label": "A>B", "dimensions": {"helpfulness": {"A": "Q" * 300_000}}}, ["body", "dimensions", "helpfulness", "A"]),
        ({"label": "A>B", "dimensions": {"Q" * 300_000: {"A": 1}}}, ["body", "dimensions", "Q" * 64 + "…"]),
    ],
)
def test_a_422_names_the_field_and_why_but_never_echoes_the_value(store, http, body, loc):
    token, task_id = open_task(store, http)
    r = http.post(f"/api/tasks/{task_id}/annotations", headers=auth(token), json=body)
    assert r.status_code == 422
    assert len(r.content) < 2000 and "Q" * 65 not in r.text
    assert loc in [d["loc"] for d in r.json()["detail"]] and all(d["msg"] for d in r.json()["detail"])


def _limits(**kwargs):
    from prefpipe.annotate.guard import Limits

    return Limits(**kwargs)


def test_more_than_four_requests_in_flight_for_one_annotator_is_429(store, live, http):
    token, task_id = open_task(store, http)
    other = store.add_annotator("other")
    path = f"/api/tasks/{task_id}/skip"
    body = b'{"reason": "held"}'
    held = [Partial(live, path, auth(token), body, 1) for _ in range(4)]
    deadline = time.monotonic() + 30
    while (probe := http.get("/api/me", headers=auth(token))).status_code != 429:
        assert probe.status_code == 200 and time.monotonic() < deadline, "no 429 with four requests in flight"
        for i, h in enumerate(held):  # one that came in while a probe was in flight was refused: send it again
            if h.answered_early():
                h.sock.close()
                held[i] = Partial(live, path, auth(token), body, 1)
        time.sleep(0.02)
    assert probe.headers["retry-after"] == "1" and "4 requests" in probe.json()["detail"]
    assert http.get("/api/me", headers=auth(other)).status_code == 200  # per annotator, not for everyone
    assert sorted(h.status() for h in held) == ["200", "409", "409", "409"]  # all four ran; the first skip stands
    assert http.get("/api/me", headers=auth(token)).status_code == 200
