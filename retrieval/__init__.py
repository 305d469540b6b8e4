"""Embeddings and per-user FAISS indexes over past contexts (caches of the store's preference rows)."""

from .embedder import Embedder, packaged_model_path
from .errors import EmbedderUnavailable, RetrievalError
from .index import IndexCache, Neighbour, PreferenceIndex

__all__ = ["Embedder", "packaged_model_path", "PreferenceIndex", "IndexCache", "Neighbour", "RetrievalError",
           "EmbedderUnavailable"]
