"""The deployment files are linted here because no Docker engine runs on these machines."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed (it comes with the dev extras: pip install -e '.[dev]')")
    return found


def test_dockerfile_passes_hadolint():
    proc = subprocess.run([_hadolint(), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck_and_volume():
    text = (REPO / "Dockerfile").read_text()
    assert "\nUSER 10001" in text and "HEALTHCHECK" in text and 'VOLUME ["/data"]' in text
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ")}
    folders = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    for package in folders:  # `pip install .` in the image needs every folder pyproject.toml installs
        assert package in copied, f"Dockerfile does not copy {package}/"


def test_compose_wires_redline_to_vllm():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    redline, vllm = compose["services"]["redline"], compose["services"]["vllm"]
    assert redline["environment"]["REDLINE_GENERATOR"] == "openai"
    assert redline["environment"]["REDLINE_GENERATOR_URL"].startswith("http://vllm:8000")
    assert redline["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def _cli_command(argv: list[str]):
    """The click command ``argv`` (``["redline", "serve", ...]``) runs, and its options by flag."""
    from redline.cli import cli

    assert argv[0] == "redline", argv
    command = cli.commands[argv[1]]
    options = {flag: param for param in command.params for flag in getattr(param, "opts", [])}
    return command, options


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _learner_sign_of_life_is(slot: str, lease: str) -> None:
    """A learner running under ``--id slot`` holds the lease the compose health check asks about."""
    from redline.agent import Agent, Settings
    from redline.store import open_store

    store = open_store(None, ":memory:")
    agent = Agent(Settings(), store=store, embedder=object(), generator=object(), owner=slot)
    agent.learner_alive(seconds=60)
    assert store.leases.holder(lease) == slot
    store.close()


def test_compose_replicas_profile_agrees_with_the_settings_cli_and_routes():
    """``docker compose --profile replicas``: PostgreSQL, two API replicas and a learner. Every service's command is
    a real command with real options (``serve --role api``, ``worker --id``), every REDLINE_* name is a setting or a
    command's environment variable, ports agree with ``--port``, the health checks ask real routes (or the learner's
    real sign of life), and the database URL names the postgres service's user, password and database."""
    import re

    from redline.agent import Settings
    from redline.api.routes import ops
    from redline.cli import cli

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if "replicas" in s.get("profiles", [])}
    assert set(replicas) == {"postgres", "api-1", "api-2", "learner"}
    assert "profiles" not in services["redline"] and "profiles" not in services["vllm"]  # the default stays as it was
    settings = {f"REDLINE_{name.upper()}" for name in Settings.model_fields}
    envvars = {param.envvar for command in cli.commands.values() for param in command.params
               if isinstance(getattr(param, "envvar", None), str)}
    routes = {route.path for route in ops.router.routes}
    pg = replicas["postgres"]
    assert pg["image"].startswith("postgres:") and "pg_isready" in pg["healthcheck"]["test"]
    user, password, db = (pg["environment"][k] for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
    for name in ("api-1", "api-2", "learner"):
        service = replicas[name]
        env = service["environment"]
        assert set(env) <= settings | envvars, (name, set(env) - settings - envvars)
        assert Settings(**{k.removeprefix("REDLINE_").lower(): v for k, v in env.items()}).database_url  # validates
        assert env["REDLINE_DATABASE_URL"] == f"postgresql://{user}:{password}@postgres:5432/{db}"
        assert env["REDLINE_GENERATOR_URL"].startswith("http://vllm:8000")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["vllm"]["condition"] == "service_healthy"
        assert {"interval", "timeout", "retries"} <= set(service["healthcheck"])
        command, options = _cli_command(service["command"])
        assert all(arg in options for arg in service["command"][2:] if arg.startswith("--")), name
        check = " ".join(service["healthcheck"]["test"])
        if name.startswith("api-"):
            assert command.name == "serve" and _flag(service["command"], "--role") == "api"
            assert "api" in options["--role"].type.choices
            port = _flag(service["command"], "--port")
            assert service["ports"] == [f"{port}:{port}"]
            assert _flag(service["command"], "--host") == "0.0.0.0"
            [(checked_port, path)] = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
            assert checked_port == port and path in routes, (name, path)
        else:
            assert command.name == "worker"
            slot = _flag(service["command"], "--id")
            assert f"holder('learner:{slot}') != '{slot}'" in check
            _learner_sign_of_life_is(slot, f"learner:{slot}")
    assert services["api-1"]["volumes"] != services["api-2"]["volumes"]  # each replica's own data dir (caches)
