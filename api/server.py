"""Running the app on uvicorn: on its own port, or on a listening socket a supervisor opened (``redline serve``
runs its API processes so, several on one port)."""

from __future__ import annotations

import logging
import socket
import sys

from redline.runtime.logs import configure_logging

__all__ = ["configure_logging", "run_server"]
log = logging.getLogger(__name__)


def run_server(app, host: str, port: int, *, sock: socket.socket | None = None) -> None:
    """Serve ``app`` on ``host:port``, or on the listening socket ``sock`` when given (then ``host``/``port`` only name
    it in the log). Returns after a clean shutdown (SIGTERM/SIGINT); exits with status 3 when startup failed."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    if sock is not None:
        name = sock.getsockname()
        log.info("Uvicorn running on http://%s:%d (a socket shared with the other API processes)", name[0], name[1])
    server.run(sockets=[sock] if sock is not None else None)
    if not server.started:
        sys.exit(3)
