"""Serve the real app with a scripted generator (no language model): for API tests and benchmarks.

``python -m redline.api._scripted_server --port 0`` reads settings from ``REDLINE_*`` like ``redline serve``.
``REDLINE_SCRIPTED_DELAY`` (seconds) slows every generator call; while the file named by
``REDLINE_SCRIPTED_DOWN_FILE`` exists the generator raises ``GeneratorUnavailable`` (an outage).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from redline.agent import Agent, GeneratorUnavailable, ScriptedGenerator, Settings
from redline.runtime import quiet_offline_models

from .app import create_app
from .server import configure_logging, run_server


class ToggleGenerator(ScriptedGenerator):
    """Deterministic texts; optional delay; down while a flag file exists; keeps no call log."""

    def __init__(self, delay: float = 0.0, down_file: str | None = None):
        super().__init__(self._respond)
        self.delay, self.down_file = delay, Path(down_file) if down_file else None

    @staticmethod
    def _respond(prompt, i: int) -> str:
        last = prompt[-1]["content"]
        if "preference" in prompt[0]["content"].lower() or "preference" in last.lower()[:400]:
            return "prefers short sentences and a friendly tone"
        return "Draft: " + " ".join(last.split()[-30:])

    def generate(self, prompts, params):
        if self.down_file is not None and self.down_file.exists():
            raise GeneratorUnavailable("scripted generator is down")
        if self.delay:
            time.sleep(self.delay)
        out = super().generate(prompts, params)
        self.calls.clear()
        return out


def main() -> None:
    quiet_offline_models()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    configure_logging(logging.INFO)
    settings = Settings()
    generator = ToggleGenerator(float(os.environ.get("REDLINE_SCRIPTED_DELAY", "0")),
                                os.environ.get("REDLINE_SCRIPTED_DOWN_FILE"))
    run_server(create_app(settings, Agent(settings, generator=generator)), args.host, args.port)


if __name__ == "__main__":
    main()
