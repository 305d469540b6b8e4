"""A non-editable install ships only what pyproject.toml lists: every data file that lives inside a
package (policies/data/lamp/..., evals/data/...) must be matched by a package-data glob."""

import glob
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages(config: dict) -> dict[str, Path]:
    """Dotted name -> folder of every package that ``packages.find`` picks up."""
    tops = {pattern.rstrip("*").rstrip(".") for pattern in config["packages"]["find"]["include"]}
    found = {}
    for top in tops:
        for init in (REPO / top).rglob("__init__.py"):
            folder = init.parent
            found[".".join(folder.relative_to(REPO).parts)] = folder
    return found


def _data_files(packages: dict[str, Path]) -> dict[Path, str]:
    """Every non-Python file under a package folder -> the nearest enclosing package."""
    files = {}
    for name, folder in sorted(packages.items(), key=lambda kv: len(kv[1].parts)):  # deepest package wins
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc"):
                files[path] = name
    return files


def test_every_data_file_inside_a_package_is_in_package_data():
    config = _setuptools_config()
    packages = _packages(config)
    globs = config.get("package-data", {})
    data = _data_files(packages)
    assert any(p.is_relative_to(REPO / "policies" / "data" / "lamp") for p in data)  # the check sees them
    assert any(p.is_relative_to(REPO / "evals" / "data") for p in data)
    missing = []
    for path, package in data.items():
        root = packages[package]
        covered = {root / hit for pattern in globs.get(package, []) + globs.get("*", [])
                   for hit in glob.glob(pattern, root_dir=root, recursive=True)}
        if path not in covered:
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"not in [tool.setuptools.package-data], so missing from a wheel: {missing}"
