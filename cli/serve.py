"""``redline serve``: the HTTP API on uvicorn."""

from __future__ import annotations

import logging

import click

from ._common import State, json_option, pass_state

__all__ = ["serve"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="REDLINE_HOST",
              help="Interface to listen on (0.0.0.0 for all) [env REDLINE_HOST].")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, envvar="REDLINE_PORT",
              help="TCP port (0 picks a free one, printed at start) [env REDLINE_PORT].")
@click.option("--no-auth", is_flag=True,
              help="Serve without API keys, everything in tenant 'default' (local use only) [env REDLINE_AUTH=false].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True,
              help="Server log level.")
@json_option
@pass_state
def serve(state: State, host, port, no_auth, log_level):
    """Serve the HTTP API (OpenAPI page at /docs).

    With auth on (the default) every /v1 request needs 'Authorization: Bearer KEY'; create keys with
    `redline keys create --tenant NAME`. For local use without keys: `redline serve --no-auth`.
    """
    from redline.api.app import create_app
    from redline.api.server import configure_logging, run_server

    settings = state.settings_with(auth=False) if no_auth else state.settings
    configure_logging(getattr(logging, log_level.upper()))
    if not settings.auth and host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("redline").warning("auth is off on a non-loopback interface (%s): anyone who can reach "
                                             "it can read and change every user's data", host)
    click.echo(f"redline: serving on http://{host}:{port} (docs at /docs; auth {'on' if settings.auth else 'off'}); "
               f"data in {settings.data_dir}", err=True)
    run_server(create_app(settings), host, port)
