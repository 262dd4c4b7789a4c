"""The scripted server's hostile faults on their own, through plain sockets and urllib: a 100 MB
body streamed without being held in memory, a request never answered, a body that trickles
forever, and 200s whose JSON has no answer. Each stops as soon as the client goes away."""

from __future__ import annotations

import json
import socket
import time
import tracemalloc
import urllib.request

import pytest

from prefpipe.testing.scripted_server import Fault, ScriptedServer

HUNDRED_MB = 100 * 2**20
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hostile"}]}).encode()


def open_chat(server: ScriptedServer, timeout: float) -> socket.socket:
    """A raw connection with the chat request sent, so the test sees exactly what comes back."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    sock.sendall(head.encode() + BODY)
    return sock


def read_headers(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def test_a_huge_body_is_streamed_whole_without_being_held_in_memory(server: ScriptedServer) -> None:
    server.on("hostile", Fault("huge_body", size=HUNDRED_MB))
    request = urllib.request.Request(server.base_url + "/chat/completions", data=BODY, headers={"content-type": "application/json"})
    tracemalloc.start()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            first = response.read(64)
            size, last = len(first), b""
            while chunk := response.read(2**20):
                size, last = size + len(chunk), chunk
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == HUNDRED_MB and server.counts["huge_body_bytes"] == HUNDRED_MB
    assert first.startswith(b'{"id": "chatcmpl-') and last.endswith(b"}")  # a valid completion, if one read it all
    assert peak < HUNDRED_MB // 10  # neither the server (same process) nor this reader held it


def test_a_huge_body_stops_when_the_client_hangs_up(server: ScriptedServer) -> None:
    server.on("hostile", Fault("huge_body", size=HUNDRED_MB))
    sock = open_chat(server, timeout=10)
    head, _ = read_headers(sock)
    assert b"200 OK" in head and b"transfer-encoding: chunked" in head.lower()  # no length to refuse it by
    received = 0
    while received < 2**20:
        received += len(sock.recv(2**16))
    sock.close()
    server.wait_idle()
    assert server.in_flight == 0 and server.counts["huge_body_bytes"] < HUNDRED_MB // 4


def test_a_hang_sends_nothing_until_the_client_leaves(server: ScriptedServer) -> None:
    server.on("hostile", Fault("hang"))
    sock = open_chat(server, timeout=0.3)
    deadline = time.monotonic() + 10
    while not server.counts["chat"] and time.monotonic() < deadline:  # the server has the request...
        time.sleep(0.01)
    with pytest.raises(TimeoutError):  # ...and answers nothing
        sock.recv(1)
    assert server.in_flight == 1
    sock.close()
    server.wait_idle()
    assert server.in_flight == 0


def test_a_trickle_sends_one_byte_at_a_time_and_never_ends(server: ScriptedServer) -> None:
    server.on("hostile", Fault("trickle", delay=0.005))
    sock = open_chat(server, timeout=10)
    head, body = read_headers(sock)
    assert b"200 OK" in head and b"transfer-encoding: chunked" in head.lower()
    while body.count(b"\r\n") < 20:  # ten chunks: "1\r\n \r\n" each
        body += sock.recv(4096)
    chunks = body.split(b"\r\n")
    assert chunks[:20] == [b"1", b" "] * 10  # each chunk one byte; no "0" chunk closing the body
    sock.close()
    server.wait_idle()
    assert server.in_flight == 0 and server.counts["trickle_bytes"] >= 10


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("empty_choices", lambda body: body["choices"] == []),
        ("no_choices", lambda body: "choices" not in body and body["error"]["type"] == "server_error"),
        ("null_content", lambda body: body["choices"][0]["message"] == {"role": "assistant", "content": None}),
    ],
)
def test_valid_json_without_an_answer(server: ScriptedServer, kind: str, check) -> None:  # noqa: ANN001
    server.on("hostile", Fault(kind))  # type: ignore[arg-type]
    request = urllib.request.Request(server.base_url + "/chat/completions", data=BODY, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert body["object"] == "chat.completion" and check(body)
    # scripted once: the next identical request is answered normally
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["choices"][0]["message"]["content"]
