"""What every command shares: the settings built from the global options, the Agent built once, output as
text or JSON (``--json`` before or after the command), and reading text files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from redline.agent import Agent, Settings

__all__ = ["State", "pass_state", "emit", "json_option", "read_text", "MAX_FILE_BYTES"]

MAX_FILE_BYTES = 10 * 1024 * 1024


class State:
    """The global options: settings overrides (None = not given) and whether to print JSON."""

    def __init__(self, overrides: dict, as_json: bool):
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        self.as_json = as_json
        self._agent: Agent | None = None

    def settings_with(self, **changes) -> Settings:
        """The settings: ``REDLINE_*`` environment, the global options, then ``changes``."""
        return Settings(**{**self.overrides, **changes})

    @property
    def settings(self) -> Settings:
        return self.settings_with()

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = Agent(self.settings)
        return self._agent


pass_state = click.make_pass_decorator(State)


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(State).as_json = True


def json_option(command):
    """``--json`` on a command, so it works after the command name as well as before it."""
    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_set_json,
                        help="Print machine-readable JSON.")(command)


def emit(payload: dict, human: str) -> None:
    """Print ``payload`` as JSON under ``--json``, else the ``human`` text."""
    as_json = click.get_current_context().find_object(State).as_json
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, default=str) if as_json else human)


def read_text(path: str, what: str) -> str:
    """Contents of a UTF-8 text file, or '-' for standard input; errors are one sentence."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            p = Path(path)
            if not p.is_file():
                raise click.ClickException(f"cannot read {what} file {path}: no such file")
            data = p.read_bytes()[: MAX_FILE_BYTES + 1]
    except OSError as exc:
        raise click.ClickException(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise click.ClickException(f"{what} file {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{what} file {path} is not valid UTF-8 text") from exc
