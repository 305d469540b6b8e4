"""Serve the real app with a scripted generator (no language model): for API tests and benchmarks.

``python -m redline.testing.server --port 0`` reads settings from ``REDLINE_*`` like ``redline serve``.
``REDLINE_SCRIPTED_DELAY`` (seconds) slows every generator call; while the file named by
``REDLINE_SCRIPTED_DOWN_FILE`` exists the generator raises ``GeneratorUnavailable`` (an outage), while the one
named by ``REDLINE_SCRIPTED_BROKEN_FILE`` exists a ``RuntimeError`` (a bug the server did not foresee).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import httpx

from redline.agent import Agent, Settings
from redline.api.app import create_app
from redline.api.server import configure_logging, run_server
from redline.runtime import quiet_offline_models

from .generators import ToggleGenerator


def wait_ready(url: str, timeout: float = 180) -> bool:
    """Poll ``url/ready`` until it answers 200 (True) or ``timeout`` seconds pass (False). Not ready yet: a refused
    connection (the server does not listen yet) and a request that times out (a server warming up on a loaded
    machine can take longer than httpx's default)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url + "/ready", timeout=10).status_code == 200:
                return True
        except (httpx.ConnectError, httpx.TimeoutException):
            pass
        time.sleep(0.2)
    return False


def main() -> None:
    quiet_offline_models()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    configure_logging(logging.INFO)
    settings = Settings()
    generator = ToggleGenerator(float(os.environ.get("REDLINE_SCRIPTED_DELAY", "0")),
                                os.environ.get("REDLINE_SCRIPTED_DOWN_FILE"),
                                os.environ.get("REDLINE_SCRIPTED_BROKEN_FILE"))
    run_server(create_app(settings, Agent(settings, generator=generator)), args.host, args.port)


if __name__ == "__main__":
    main()
