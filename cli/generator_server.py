"""``redline generator-server``: llama.cpp's server on the configured model, in the foreground, for other redline
processes (or hosts) to share through ``REDLINE_GENERATOR_URL``."""

from __future__ import annotations

import signal
import threading

import click

from ._common import State, emit, json_option, pass_state

__all__ = ["generator_server"]


@click.command("generator-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0 picks a free one, printed at start).")
@json_option
@pass_state
def generator_server(state: State, host, port):
    """Run llama.cpp's server (llama-server) on the generator model until stopped (Ctrl-C or SIGTERM).

    The model (--generator-model), slots, context and threads come from the settings (REDLINE_GENERATOR_SLOTS,
    REDLINE_GENERATOR_CONTEXT, REDLINE_GENERATOR_THREADS). Point redline at it with
    REDLINE_GENERATOR_URL=http://HOST:PORT/v1 (the llama-server back-end then attaches instead of starting its own).
    """
    from redline.agent import GeneratorUnavailable
    from redline.agent.generators.llama_server import LlamaServer

    settings = state.settings
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = LlamaServer.from_settings(settings, host=host, port=port).start()
    except GeneratorUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    emit({"url": server.url, "model": server.model.name, "slots": server.slots, "threads": server.threads,
          "log": str(server.log_path)},
         f"redline: llama-server on {server.url} ({server.model.name}, {server.slots} slots, {server.threads} "
         f"threads); log in {server.log_path}")
    try:
        while not stop.wait(1.0):
            if not server.alive:
                raise click.ClickException(f"llama-server exited; see {server.log_path}")
    finally:
        server.stop()
