"""The source of truth: users, interactions, edits, preferences (with their context vectors), preference pairs,
per-user routing state, reward checkpoints, background jobs (claimed with leases), named leases, API keys, the
inspector's sessions and the generator's health: everything the API and learner processes share.

One interface (``Store``, a protocol) and two back-ends over one body of SQL: ``SQLiteStore`` (a file in the data
directory, the embedded default) and ``PostgresStore`` (one database shared by several hosts); ``open_store`` picks
one. Never imports ``agent``, ``api`` or ``cli``.
"""

from ._sqlite import blob_to_vector, now_iso, vector_to_blob
from .checkpoints import Checkpoints
from .errors import Conflict, NotFound, StoreError, lost_a_race
from .health import Health
from .interface import Store, open_store
from .jobs import Jobs
from .keys import ApiKeys
from .leases import Leases
from .postgres import PostgresStore
from .schema import SCHEMA_VERSION
from .sql import SQLiteStore

__all__ = ["Store", "open_store", "SQLiteStore", "PostgresStore", "Jobs", "ApiKeys", "Checkpoints", "Leases",
           "Health", "SCHEMA_VERSION", "StoreError", "NotFound", "Conflict", "lost_a_race", "now_iso", "vector_to_blob",
           "blob_to_vector"]
