"""Embeddings, the SQLite store, and per-user FAISS indexes over past contexts."""

from .embedder import Embedder, packaged_model_path
from .errors import Conflict, EmbedderUnavailable, NotFound, RetrievalError
from .index import IndexCache, Neighbour, PreferenceIndex
from .store import SCHEMA_VERSION, Store

__all__ = [
    "Embedder", "packaged_model_path", "Store", "SCHEMA_VERSION", "PreferenceIndex", "IndexCache",
    "Neighbour", "RetrievalError", "NotFound", "Conflict", "EmbedderUnavailable",
]
