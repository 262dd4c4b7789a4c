"""Run the app with uvicorn on a socket we bind ourselves, so port 0 gives a free port we can print.

`ServerThread` runs it in a background thread for tests and benchmarks (bounded start-up wait,
clean stop); `serve` runs it in the foreground for `prefpipe annotate`.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=2048)
    return uvicorn.Server(config)


def serve(app: Any, sock: socket.socket) -> None:
    _server(app).run(sockets=[sock])


class ServerThread:
    """`with ServerThread(app) as url:` serves `app` on 127.0.0.1 at an ephemeral port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", start_timeout_s: float = 15.0) -> None:
        self._sock = bind(host, 0)
        self.url = url_of(self._sock)
        self._server = _server(app)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._start_timeout_s = start_timeout_s

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the annotation server did not start at {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()
