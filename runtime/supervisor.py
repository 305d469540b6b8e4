"""Processes that run together and stop together: what ``redline serve`` does on one machine.

A ``Supervisor`` starts its ``Child`` processes group by group, in order (a group waits until the previous one
says it is ready, when that group has a readiness check), restarts a child that dies (at once, then backing off
while it keeps dying young), and on SIGTERM or SIGINT stops the groups in reverse order, each child with SIGTERM
(SIGKILL after ``stop_timeout``). ``redline serve``'s groups: the learner, then the API processes, so a stop ends
the API processes first (no new edits) and the learner last (it finishes its batch). A group added in front (a
local generator server) starts first and stops last; the children after it find its address in the environment
the supervisor gives them.

Children die with the supervisor: each calls ``watch_parent()`` at start (on Linux the kernel sends it SIGTERM
when the supervisor dies, even by SIGKILL). ``listening_sockets`` opens the API processes' port once, in the
supervisor, so a child that restarts finds it open and its waiting connections queued.

Imports nothing of redline (see ``redline.runtime``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Child", "Supervisor", "listening_sockets", "watch_parent", "SUPERVISOR_PID_ENV", "LISTEN_FD_ENV"]
log = logging.getLogger(__name__)

SUPERVISOR_PID_ENV = "REDLINE_SUPERVISOR_PID"
LISTEN_FD_ENV = "REDLINE_LISTEN_FD"
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised process: ``name`` in logs, ``group`` (children of a group start and stop together), the
    command, the environment added to the supervisor's, file descriptors it inherits, and ``ready()`` (the next
    group starts once it is true; None: at once). A child that is not redline (it cannot call ``watch_parent``)
    gets ``preexec`` run before its program (e.g. to die with the supervisor) and its output in ``log_path``."""

    name: str
    group: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()
    ready: Callable[[], bool] | None = None
    preexec: Callable[[], object] | None = None
    log_path: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0


class Supervisor:
    """``run()`` until SIGTERM/SIGINT; returns the exit status (0 after a clean stop, 1 when a child kept dying
    right after it started, ``max_quick_deaths`` times in a row: a setting or the environment is wrong)."""

    def __init__(self, children: list[Child], *, stop_timeout: float = 60.0, ready_timeout: float = 600.0,
                 max_quick_deaths: int = 5, young_seconds: float = 10.0,
                 on_exit: Callable[[Child, int], None] | None = None,
                 on_stopped: Callable[[str], None] | None = None):
        self.children, self.stop_timeout, self.ready_timeout = children, stop_timeout, ready_timeout
        self.max_quick_deaths, self.young_seconds, self.on_exit = max_quick_deaths, young_seconds, on_exit
        self.on_stopped = on_stopped  # called with a group's name once its children stopped (at the final stop)
        self._stopping = threading.Event()
        self._due: dict[str, float] = {}  # name -> when to restart it

    @property
    def groups(self) -> list[list[Child]]:
        order = list(dict.fromkeys(c.group for c in self.children))
        return [[c for c in self.children if c.group == g] for g in order]

    def stop(self) -> None:
        """Ask ``run`` to stop everything (what SIGTERM and SIGINT do)."""
        self._stopping.set()

    def run(self) -> int:
        previous = {s: signal.signal(s, lambda *_: self.stop()) for s in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for group in self.groups:
                for child in group:
                    self._start(child)
                if not self._wait_ready(group):
                    status = 1
                    break
            if status == 0:
                status = self._watch()
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return status

    def _start(self, child: Child) -> None:
        env = {**os.environ, **child.env, SUPERVISOR_PID_ENV: str(os.getpid())}
        # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which stops the children in order.
        out = open(child.log_path, "ab") if child.log_path else None
        try:
            child.proc = subprocess.Popen(child.argv, env=env, pass_fds=child.pass_fds, start_new_session=True,
                                          preexec_fn=child.preexec, stdin=subprocess.DEVNULL if out else None,
                                          stdout=out, stderr=subprocess.STDOUT if out else None)
        finally:
            if out is not None:
                out.close()
        child.started_at = time.monotonic()
        log.info("supervisor: started %s (pid %d)", child.name, child.proc.pid)

    def _wait_ready(self, group: list[Child]) -> bool:
        end = time.monotonic() + self.ready_timeout
        for child in group:
            while child.ready is not None and not child.ready():
                if self._stopping.wait(0.2):
                    return True
                if child.proc.poll() is not None or time.monotonic() > end:
                    log.error("supervisor: %s did not get ready (exit status %s)", child.name, child.proc.poll())
                    return False
        return True

    def _watch(self) -> int:
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                code = child.proc.poll()
                if code is None or child.name in self._due:
                    if child.name in self._due and now >= self._due[child.name]:
                        del self._due[child.name]
                        child.restarts += 1
                        self._start(child)
                    continue
                if self.on_exit is not None:
                    self.on_exit(child, child.proc.pid)
                young = now - child.started_at < self.young_seconds
                child.quick_deaths = child.quick_deaths + 1 if young else 0
                if child.quick_deaths >= self.max_quick_deaths:
                    log.error("supervisor: %s died %d times right after starting (last exit status %s); stopping",
                              child.name, child.quick_deaths, code)
                    return 1
                delay = min(30.0, 0.5 * 2 ** child.quick_deaths) if young else 0.0
                log.warning("supervisor: %s (pid %d) exited with status %s; restarting it in %.1f s", child.name,
                            child.proc.pid, code, delay)
                self._due[child.name] = now + delay
        return 0

    def _stop_all(self) -> None:
        for group in reversed(self.groups):
            running = [c for c in group if c.proc is not None and c.proc.poll() is None]
            for child in running:
                log.info("supervisor: stopping %s (pid %d)", child.name, child.proc.pid)
                child.proc.terminate()
            end = time.monotonic() + self.stop_timeout
            for child in running:
                try:
                    child.proc.wait(max(0.1, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.error("supervisor: %s did not stop within %.0f s; killing it", child.name, self.stop_timeout)
                    child.proc.kill()
                    child.proc.wait()
                if self.on_exit is not None:
                    self.on_exit(child, child.proc.pid)
            if group and self.on_stopped is not None:
                self.on_stopped(group[0].group)


def listening_sockets(host: str, port: int, count: int, *, backlog: int = 2048) -> list[socket.socket]:
    """``count`` listening TCP sockets on ``host:port`` (port 0: a free one, the same for all). On Linux each is its
    own socket with ``SO_REUSEPORT``, so the kernel spreads new connections evenly over the API processes (one
    shared socket lets whichever process wakes first accept a whole burst); elsewhere one socket serves all.
    ``OSError`` when the port is taken (by anything, this machine's other redline included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)  # without SO_REUSEPORT: fails if anyone holds the port
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    finally:
        probe.close()
    shared = not (sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")) or count == 1
    sockets = []
    for _ in range(1 if shared else count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sockets.append(sock)
    return sockets * count if shared else sockets


def watch_parent() -> None:
    """In a supervised child (``REDLINE_SUPERVISOR_PID`` set): stop (SIGTERM to itself) when the supervisor dies. On
    Linux the kernel does it (``PR_SET_PDEATHSIG``, even when the supervisor is killed); elsewhere a thread checks
    the parent every second."""
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected:
        return
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
        else:
            if os.getppid() != int(expected):  # it died before the request took effect
                os.kill(os.getpid(), signal.SIGTERM)
            return

    def watch() -> None:
        while os.getppid() == int(expected):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="redline-parent-watch", daemon=True).start()
