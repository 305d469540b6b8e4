"""What an install ships: every folder installs under the one ``redline`` import name (pyproject's
``package-dir``), every package folder and every data file inside one is listed, and a wheel holds nothing else."""

import glob
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE = ("agent", "api", "cli", "evals", "policies", "retrieval", "runtime", "store", "text")  # the folders


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(name: str, package_dir: dict[str, str]) -> Path:
    """The folder of dotted package ``name`` under the ``package-dir`` mapping (most specific prefix wins)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in package_dir:
            return REPO / package_dir[prefix] / Path(*parts[i:])
    raise AssertionError(f"package {name} is not under any package-dir mapping")


def _packages(config: dict) -> dict[str, Path]:
    """Dotted name -> folder of every package that pyproject.toml lists."""
    return {name: _folder(name, config["package-dir"]) for name in config["packages"]}


def test_every_folder_installs_under_redline():
    config = _setuptools_config()
    assert all(name.startswith("redline.") for name in config["packages"])
    assert all(name.startswith("redline.") for name in config["package-dir"])
    listed = set(_packages(config).values())
    on_disk = {init.parent for top in config["package-dir"].values() for init in (REPO / top).rglob("__init__.py")}
    assert on_disk == listed, f"package folders not listed in [tool.setuptools] packages: {on_disk - listed}"


def test_every_data_file_inside_a_package_is_in_package_data():
    config = _setuptools_config()
    packages = _packages(config)
    globs = config.get("package-data", {})
    data = {}
    for name, folder in sorted(packages.items(), key=lambda kv: len(kv[1].parts)):  # deepest package wins
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc"):
                data[path] = name
    assert any(p.is_relative_to(REPO / "evals" / "data") for p in data)  # the check sees them
    missing = []
    for path, package in data.items():
        root = packages[package]
        covered = {root / hit for pattern in globs.get(package, []) + globs.get("*", [])
                   for hit in glob.glob(pattern, root_dir=root, recursive=True)}
        if path not in covered:
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"not in [tool.setuptools.package-data], so missing from a wheel: {missing}"


def test_the_wheel_holds_only_the_redline_namespace(tmp_path):
    source = tmp_path / "source"  # a copy: a build writes build/ and *.egg-info beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in _setuptools_config()["package-dir"].values():
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("redline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"redline", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert "redline/evals/data/lamp_W3_edits.json" in names and "redline/api/routes/users.py" in names
    assert "redline/__init__.py" not in names  # a namespace: the folders are its only content
    assert not [n for n in names if n.startswith("redline/testing/") or "doubles" in n]  # test doubles stay in tests/


def test_installed_names_are_redline_only(tmp_path):
    """Away from the repository (no folder on sys.path) every module imports, and nothing bare does."""
    code = ("import importlib, importlib.util, pkgutil, sys\n"
            f"for name in {sorted(_setuptools_config()['packages'])!r}:\n"
            "    package = importlib.import_module(name)\n"
            "    for module in pkgutil.iter_modules(package.__path__, name + '.'):\n"
            "        importlib.import_module(module.name)\n"
            "bare = [n for n in " + repr(BARE) + "\n"
            "        if n in sys.modules or importlib.util.find_spec(n) is not None]\n"
            "assert not bare, bare\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_code_imports_a_folder_by_its_bare_name():
    """``import agent`` would load a second copy of redline.agent from a checkout (its classes not the same)."""
    bare = "|".join(BARE)
    pattern = re.compile(rf"^\s*(?:from|import) (?:{bare})\b|[\"']-m[\"'], [\"'](?:{bare})\.", re.M)
    files = [p for folder in (*_setuptools_config()["package-dir"].values(), "tests", "benchmarks", "scripts")
             for p in (REPO / folder).rglob("*") if p.is_file() and p.suffix in (".py", "")]
    offenders = [str(p.relative_to(REPO)) for p in files if pattern.search(p.read_text(errors="replace"))]
    assert not offenders, offenders
