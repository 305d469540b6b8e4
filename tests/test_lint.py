"""ruff (configured in pyproject.toml: pycodestyle, pyflakes, import order) passes on the whole tree."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_passes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed (it comes with the dev extras: pip install -e '.[dev]')")
    proc = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", str(REPO)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
