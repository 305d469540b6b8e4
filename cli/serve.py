"""``redline serve``: the API processes and a learner, supervised; ``redline worker``: one learner.

``serve`` (role ``all``) is a supervisor (``redline.runtime.supervisor``): it opens the port, starts the generator
server (with the default ``llama-server`` back-end and no ``REDLINE_GENERATOR_URL``: one llama-server every process
calls), one learner process and ``--api-workers`` API processes that share the port, restarts one that dies, and
stops them all on SIGTERM/SIGINT. ``serve --role api`` runs API processes only (learners run beside them). Each
redline child is this command again (``serve --role api`` on the supervisor's socket, or ``worker``) with the
settings in its environment.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile

import click

from redline.runtime.metrics import MULTIPROC_ENV
from redline.runtime.supervisor import LISTEN_FD_ENV, Child, Supervisor, listening_sockets, watch_parent

from ._common import State, json_option, pass_state

__all__ = ["serve", "worker"]
log = logging.getLogger("redline.serve")
LEARNER_ID_ENV = "REDLINE_LEARNER_ID"
_LOCAL = ("127.0.0.1", "localhost", "::1")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="REDLINE_HOST",
              help="Interface to listen on (0.0.0.0 for all) [env REDLINE_HOST].")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, envvar="REDLINE_PORT",
              help="TCP port (0 picks a free one, printed at start) [env REDLINE_PORT].")
@click.option("--no-auth", is_flag=True,
              help="Serve without API keys, everything in tenant 'default' (local use only) [env REDLINE_AUTH=false].")
@click.option("--role", type=click.Choice(["all", "api"]), default="all", show_default=True,
              help="all: API processes and one learner process, supervised; api: API processes only (run learners "
                   "beside them with `redline worker`).")
@click.option("--api-workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="API processes sharing the port.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True,
              help="Server log level.")
@json_option
@pass_state
def serve(state: State, host, port, no_auth, role, api_workers, log_level):
    """Serve the HTTP API (OpenAPI page at /docs) and learn from the edits it accepts.

    On one machine this supervises one llama-server (the default generator; unless REDLINE_GENERATOR_URL names a
    running server), one learner process and --api-workers API processes, restarting any that dies; SIGTERM or
    Ctrl-C stops them in order (API processes, learner, generator).

    With auth on (the default) every /v1 request needs 'Authorization: Bearer KEY'; create keys with
    `redline keys create --tenant NAME`. For local use without keys: `redline serve --no-auth`.
    """
    from redline.runtime.logs import configure_logging

    configure_logging(getattr(logging, log_level.upper()))
    settings = state.settings_with(auth=False) if no_auth else state.settings
    inherited = os.environ.get(LISTEN_FD_ENV)
    if inherited is not None:  # an API process of a supervisor: serve on its socket
        watch_parent()
        _run_api(settings, host, port, socket.socket(fileno=int(inherited)))
        return
    if not settings.auth and host not in _LOCAL:
        log.warning("auth is off on a non-loopback interface (%s): anyone who can reach it can read and change every "
                    "user's data", host)
    try:
        sockets = listening_sockets(host, port, api_workers)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound = sockets[0].getsockname()[1]
    learners = "one learner" if role == "all" else "no learner (role api)"
    click.echo(f"redline: serving on http://{host}:{bound} (docs at /docs; auth {'on' if settings.auth else 'off'}; "
               f"{api_workers} API process{'es' if api_workers > 1 else ''}, {learners}); data in {settings.data_dir}",
               err=True)
    if role == "api" and api_workers == 1:  # nothing to supervise
        _run_api(settings, host, bound, sockets[0])
        return
    sys.exit(_supervise(state, settings, sockets, role, log_level))


@click.command("worker")
@click.option("--id", "learner_id", envvar=LEARNER_ID_ENV,
              help="The name this learner claims jobs under, unique among running learners; one restarted with the "
                   "same name takes back at once the jobs its predecessor held [env REDLINE_LEARNER_ID; default "
                   "host:pid:random].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True,
              help="Log level.")
@json_option
@pass_state
def worker(state: State, learner_id, log_level):
    """Run one learner: learn the edits the API processes queued (inference, edit rules, the reward step) and retrain
    the shared reward, until SIGTERM or Ctrl-C (the batch in progress finishes; the jobs not started stay queued).
    Several may run on one store."""
    from redline.learner import run_learner
    from redline.runtime.logs import configure_logging

    configure_logging(getattr(logging, log_level.upper()))
    watch_parent()
    sys.exit(run_learner(state.settings, owner=learner_id))


def _run_api(settings, host: str, port: int, sock: socket.socket) -> None:
    from redline.api.app import create_app
    from redline.api.server import run_server

    run_server(create_app(settings), host, port, sock=sock)


def _child_env(state: State, settings) -> dict[str, str]:
    """The settings the command line gave, as the environment a child reads them from."""
    env = {f"REDLINE_{name.upper()}": str(value) for name, value in state.overrides.items()}
    if not settings.auth:
        env["REDLINE_AUTH"] = "false"
    return env


def _generator_child(settings, env: dict[str, str]) -> Child:
    """ONE llama-server for every process of this machine (the API processes' requests and the learner's
    background inferences share its slots, the learner's waiting while requests decode), supervised like them;
    its URL goes into every child's environment before any starts."""
    from redline.agent.errors import GeneratorUnavailable
    from redline.agent.generators.llama_server import LlamaServer, die_with_parent, llama_server_binary

    try:
        server = LlamaServer.from_settings(settings)
        command = server.command(llama_server_binary()) if server.pick_port() else []
    except GeneratorUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    env["REDLINE_GENERATOR_URL"] = server.url
    click.echo(f"redline: generator llama-server at {server.url} ({server.model.name}, {server.slots} slots, "
               f"{server.threads} threads; log {server.log_path})", err=True)
    return Child("generator", "generator", command, ready=server.healthy, preexec=die_with_parent(),
                 log_path=str(server.log_path))


def _supervise(state: State, settings, sockets: list[socket.socket], role: str, log_level: str) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="redline-metrics-")  # this serve's processes' metrics, read by /metrics
    base = [sys.executable, "-m", "redline.cli"]
    env = {**_child_env(state, settings), MULTIPROC_ENV: metrics_dir}
    children = []
    if settings.generator == "llama-server" and not settings.generator_url:
        children.append(_generator_child(settings, env))  # first group: started first, stopped last
    if role == "all":
        slot = f"{socket.gethostname()}:{os.getpid()}:learner-0"
        children.append(Child("learner-0", "learner", [*base, "worker", "--log-level", log_level],
                              {**env, LEARNER_ID_ENV: slot}))
    for i, sock in enumerate(sockets):
        children.append(Child(f"api-{i}", "api", [*base, "serve", "--role", "api", "--log-level", log_level],
                              {**env, LISTEN_FD_ENV: str(sock.fileno())}, pass_fds=(sock.fileno(),)))

    def exited(child: Child, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, metrics_dir)  # its live gauges stop counting; its counters stay

    def stopped(group: str) -> None:
        if group == "api":  # refuse new connections at once rather than queue them while the learner stops
            for sock in set(sockets):
                sock.close()

    try:
        return Supervisor(children, on_exit=exited, on_stopped=stopped).run()
    finally:
        for sock in set(sockets):
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
