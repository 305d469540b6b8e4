"""README.md stays true: every CLI command, HTTP route, setting and script it should mention is there."""

from __future__ import annotations

import re
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands(cmd: click.Command, prefix: list[str]):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, prefix + [name])
    else:
        yield " ".join(prefix)


def test_every_cli_command_is_in_the_readme():
    from redline.cli import cli

    commands = list(_commands(cli, ["redline"]))
    assert len(commands) >= 10
    missing = [c for c in commands if c not in README]
    assert not missing, f"commands not in README.md: {missing}"


def test_every_http_route_is_in_the_readme(tmp_path):
    from redline.agent import Settings
    from redline.api.app import create_app

    app = create_app(Settings(data_dir=tmp_path))
    paths = set(app.openapi()["paths"])
    assert "/v1/generate" in paths
    missing = sorted(p for p in paths if p not in README)
    assert not missing, f"routes not in README.md: {missing}"


def test_every_setting_is_in_the_readme():
    from redline.agent import Settings

    names = [f"REDLINE_{name.upper()}" for name in Settings.model_fields]
    # A row may name two variables sharing a prefix ("REDLINE_GENERATOR_TIMEOUT, REDLINE_GENERATOR_RETRIES").
    missing = [n for n in names if not re.search(rf"\b{n}\b", README)]
    assert not missing, f"settings not in README.md: {missing}"


def test_every_script_and_benchmark_is_in_the_readme():
    files = [p for p in (REPO / "scripts").iterdir() if p.is_file()] + list((REPO / "benchmarks").glob("*.py"))
    missing = [p.name for p in files if p.name not in README]
    assert not missing, f"not in README.md: {missing}"


def test_the_readme_layout_matches_the_tree():
    layout = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = layout.split("```", 2)[1]
    named = {line.split("/")[0] for line in block.splitlines() if line and not line.startswith(" ")}
    # folders a checkout grows by use (results of eval runs, data) are ignored at the top of .gitignore
    ignored = {line.strip("/") for line in (REPO / ".gitignore").read_text().splitlines() if line.startswith("/")}
    folders = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")
               and not p.name.endswith(".egg-info") and p.name != "build" and p.name not in ignored}
    assert named == folders, f"README layout {sorted(named)} vs tree {sorted(folders)}"
