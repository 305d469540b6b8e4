"""The source of truth: one SQLite database for users, interactions, edits, preferences (with their context
vectors), preference pairs, per-user routing state, background jobs, API keys and the inspector's sessions.

Never imports ``agent``, ``api`` or ``cli``.
"""

from ._sqlite import blob_to_vector, now_iso, vector_to_blob
from .core import Store
from .errors import Conflict, NotFound, StoreError
from .jobs import Jobs
from .keys import ApiKeys
from .schema import SCHEMA_VERSION

__all__ = ["Store", "Jobs", "ApiKeys", "SCHEMA_VERSION", "StoreError", "NotFound", "Conflict", "now_iso",
           "vector_to_blob", "blob_to_vector"]
