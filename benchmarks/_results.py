"""What the benchmarks that write one JSON file share: the machine a run was measured on, and writing the file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

__all__ = ["machine", "write_results"]


def machine() -> dict:
    """Cores, platform, Python, and the load average as the run ends (the figures are only as quiet as it)."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def write_results(out: dict, path: Path) -> dict:
    """Write ``out`` as JSON to ``path`` (its folder created), print it, and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return out
