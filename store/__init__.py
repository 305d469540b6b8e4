"""The source of truth: one SQLite database for users, interactions, edits, preferences (with their context
vectors), preference pairs, per-user routing state, reward checkpoints, background jobs (claimed with leases),
named leases, API keys, the inspector's sessions and the generator's health: everything the API and learner
processes share.

Never imports ``agent``, ``api`` or ``cli``.
"""

from ._sqlite import blob_to_vector, now_iso, vector_to_blob
from .checkpoints import Checkpoints
from .core import Store
from .errors import Conflict, NotFound, StoreError
from .health import Health
from .jobs import Jobs
from .keys import ApiKeys
from .leases import Leases
from .schema import SCHEMA_VERSION

__all__ = ["Store", "Jobs", "ApiKeys", "Checkpoints", "Leases", "Health", "SCHEMA_VERSION", "StoreError",
           "NotFound", "Conflict", "now_iso", "vector_to_blob", "blob_to_vector"]
