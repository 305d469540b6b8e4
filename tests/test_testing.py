"""The shared test helpers of ``doubles`` (the test doubles, in tests/) that tests and benchmarks lean on."""

from __future__ import annotations

import http.server
import socket
import threading
import time

from doubles.server import wait_ready


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_wait_ready_treats_a_refused_connection_as_not_ready_yet():
    """Issue 25: while the server does not listen yet its port refuses the connection; ``wait_ready`` keeps
    polling (it raised httpx.ConnectError) until the server answers, or says False at its timeout."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    assert wait_ready(url, timeout=0.5) is False  # nothing ever listens
    result = {}
    poller = threading.Thread(target=lambda: result.update(ready=wait_ready(url, timeout=30)))
    poller.start()
    time.sleep(0.5)  # the poller meets refused connections meanwhile
    server = http.server.HTTPServer(("127.0.0.1", port), _Ready)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        poller.join(35)
    finally:
        server.shutdown()
        server.server_close()
    assert result == {"ready": True}
