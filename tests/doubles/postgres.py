"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` and ``pg_ctl`` in a temporary directory,
listening on a free loopback port, stopped (and its files removed) on ``stop()``.

>>> with PostgresServer() as pg:                      # doctest: +SKIP
...     store = PostgresStore(pg.fresh_url())         # a new, empty schema each call

The binaries are found through ``REDLINE_POSTGRES_BIN``, ``PATH`` (``initdb``) or Debian's
``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root: as root the server runs as the
``postgres`` user (Debian's package creates it). ``unavailable()`` says why a server cannot start here, or None.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

__all__ = ["PostgresServer", "find_binaries", "unavailable"]


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, newest version first; None when absent."""
    candidates = [os.environ.get("REDLINE_POSTGRES_BIN", "")]
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    for folder in filter(None, candidates):
        if all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _run_as() -> str | None:
    """The user to run the server as: None (this one), or ``postgres`` when this is root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


def unavailable() -> str | None:
    """Why no throwaway server can start on this machine, or None."""
    if find_binaries() is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql, or set REDLINE_POSTGRES_BIN)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server process over a fresh cluster (superuser ``redline``, trust authentication on loopback).
    ``durable=False`` turns fsync off (tests: nothing needs to survive the machine); benchmarks keep it on."""

    def __init__(self, *, durable: bool = False, max_connections: int = 200):
        self.durable, self.max_connections = durable, max_connections
        self.bin = find_binaries()
        if self.bin is None:
            raise RuntimeError(unavailable())
        self.dir: Path | None = None
        self.port = 0
        self._schemas = itertools.count(1)

    @property
    def url(self) -> str:
        return f"postgresql://redline@127.0.0.1:{self.port}/redline"

    def _cmd(self, *args: str) -> list[str]:
        user = _run_as()
        return ["runuser", "-u", user, "--", *args] if user else list(args)

    def start(self) -> "PostgresServer":
        self.dir = Path(tempfile.mkdtemp(prefix="redline-pg-"))
        data, sockets = self.dir / "data", self.dir / "sock"
        sockets.mkdir()
        user = _run_as()
        if user:
            entry = pwd.getpwnam(user)
            for path in (self.dir, sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._cmd(str(self.bin / "initdb"), "-D", str(data), "-U", "redline", "-A", "trust",
                                 "-E", "UTF8", "--locale=C", "--no-sync"),
                       check=True, capture_output=True, text=True)
        self.port = _free_port()
        options = (f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections="
                   f"{self.max_connections} -c fsync={'on' if self.durable else 'off'}"
                   f" -c synchronous_commit={'on' if self.durable else 'off'} -c full_page_writes="
                   f"{'on' if self.durable else 'off'}")
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w",
                                 "-t", "60", "-o", options, "start"), check=True, capture_output=True, text=True)
        atexit.register(self.stop)
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"postgresql://redline@127.0.0.1:{self.port}/postgres", autocommit=True) as c:
                    c.execute("CREATE DATABASE redline")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self

    def fresh_url(self) -> str:
        """The URL of a new, empty schema of the ``redline`` database (it is the connections' search_path)."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._schemas)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}?options={quote(f'-csearch_path={name}')}"

    def log(self) -> str:
        path = self.dir / "log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        if self.dir is None:
            return
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w",
                                 "stop"), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
