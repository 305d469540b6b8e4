"""The store on PostgreSQL, shared by API processes and learners on several hosts: ``PostgresStore(url)``.

The SQL is ``SQLStore``'s (written once); this module holds the schema as PostgreSQL DDL, one migration for each of
``store.schema``'s SQLite migrations, same numbers and names, applied under an advisory lock so that processes
starting together migrate once.
"""

from __future__ import annotations

from typing import NamedTuple

from ._postgres import Postgres
from .schema import MIGRATIONS as SQLITE_MIGRATIONS
from .sql import SQLStore

__all__ = ["PostgresStore", "MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]

_LOCK = 0x7265646C696E65  # "redline": the advisory lock that serialises migrations


class Migration(NamedTuple):
    name: str  # the SQLite migration's function name it mirrors
    statements: tuple[str, ...]


MIGRATIONS: list[Migration] = [
    Migration("_m1_initial", (
        "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT,"
        " version INTEGER DEFAULT 0)",
        "CREATE UNIQUE INDEX idx_users_tenant_name ON users (tenant, name)",
        "CREATE TABLE interactions (id TEXT PRIMARY KEY, user_id BIGINT REFERENCES users (id), task TEXT,"
        " context TEXT, context_vector BYTEA, prompt TEXT, draft TEXT, preference_used TEXT, preference_ids TEXT,"
        " neighbours TEXT, candidates TEXT, strategy TEXT, model TEXT, tokens_in INTEGER, tokens_out INTEGER,"
        " timings TEXT, created_at TEXT)",
        "CREATE INDEX idx_interactions_user_id_created_at ON interactions (user_id, created_at)",
        # id: the insertion order SQLite keeps as the rowid of this table keyed by text
        "CREATE TABLE edits (interaction_id TEXT PRIMARY KEY REFERENCES interactions (id), user_id BIGINT,"
        " edited_text TEXT, cost INTEGER, is_edit INTEGER, created_at TEXT, learned_at TEXT, preference_id BIGINT,"
        " id BIGSERIAL UNIQUE)",
        "CREATE INDEX idx_edits_user_id_created_at ON edits (user_id, created_at)",
        "CREATE TABLE preferences (id BIGSERIAL PRIMARY KEY, user_id BIGINT REFERENCES users (id), text TEXT,"
        " kind TEXT, context_vector BYTEA, interaction_id TEXT, created_at TEXT, updated_at TEXT,"
        " user_edited INTEGER DEFAULT 0)",
        "CREATE INDEX idx_preferences_user_id_id ON preferences (user_id, id)",
        "CREATE TABLE pairs (id BIGSERIAL PRIMARY KEY, user_id BIGINT, interaction_id TEXT, context TEXT,"
        " chosen TEXT, rejected TEXT, source TEXT, created_at TEXT)",
        "CREATE INDEX idx_pairs_user_id ON pairs (user_id)",
        "CREATE TABLE router_states (user_id BIGINT PRIMARY KEY, weights TEXT, steps INTEGER, updated_at TEXT)",
        "CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, kind TEXT, interaction_id TEXT, status TEXT,"
        " attempts INTEGER DEFAULT 0, error TEXT, created_at TEXT, updated_at TEXT)",
        "CREATE UNIQUE INDEX idx_jobs_kind_interaction_id ON jobs (kind, interaction_id)",
        "CREATE INDEX idx_jobs_status_id ON jobs (status, id)",
        "CREATE TABLE api_keys (id BIGSERIAL PRIMARY KEY, tenant TEXT, name TEXT, key_hash TEXT, prefix TEXT,"
        " created_at TEXT, revoked_at TEXT)",
        "CREATE UNIQUE INDEX idx_api_keys_key_hash ON api_keys (key_hash)",
        "CREATE TABLE aggregations (key TEXT PRIMARY KEY, text TEXT, created_at TEXT)",
    )),
    Migration("_m2_aggregation_owner", (
        "DELETE FROM aggregations",
        "ALTER TABLE aggregations ADD COLUMN user_id BIGINT",
        "CREATE INDEX idx_aggregations_user_id ON aggregations (user_id)",
    )),
    Migration("_m3_edit_rules", (
        "ALTER TABLE interactions ADD COLUMN raw_draft TEXT",
        "ALTER TABLE interactions ADD COLUMN applied_rules TEXT",
        "CREATE TABLE rules (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id),"
        " key TEXT NOT NULL, kind TEXT NOT NULL, params TEXT, text TEXT, origin TEXT NOT NULL, enabled INTEGER,"
        " support INTEGER DEFAULT 0, contradictions INTEGER DEFAULT 0, first_seen TEXT, last_seen TEXT,"
        " created_at TEXT, updated_at TEXT)",
        "CREATE UNIQUE INDEX idx_rules_user_id_key ON rules (user_id, key)",
        "CREATE TABLE rule_observations (rule_id BIGINT NOT NULL REFERENCES rules (id), interaction_id TEXT NOT NULL,"
        " supported INTEGER NOT NULL, created_at TEXT, PRIMARY KEY (rule_id, interaction_id))",
        "CREATE INDEX idx_rule_observations_interaction_id ON rule_observations (interaction_id)",
    )),
    Migration("_m4_pair_features", (
        "CREATE TABLE pair_features (pair_id BIGINT PRIMARY KEY, user_id BIGINT, version INTEGER, features BYTEA,"
        " context_vector BYTEA)",
        "CREATE INDEX idx_pair_features_user_id ON pair_features (user_id)",
        "DROP TABLE router_states",
        "CREATE TABLE router_states (user_id BIGINT PRIMARY KEY, state TEXT, checkpoint TEXT, steps INTEGER,"
        " updated_at TEXT)",
    )),
    Migration("_m5_ui_sessions", (
        "CREATE TABLE ui_sessions (id_hash TEXT PRIMARY KEY, key_id BIGINT NOT NULL REFERENCES api_keys (id),"
        " tenant TEXT NOT NULL, created_at TEXT, expires_at TEXT NOT NULL)",
        "CREATE INDEX idx_ui_sessions_key_id ON ui_sessions (key_id)",
        "CREATE INDEX idx_ui_sessions_expires_at ON ui_sessions (expires_at)",
        "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at TEXT)",
    )),
    Migration("_m6_shared_by_processes", (
        "ALTER TABLE jobs ADD COLUMN claimed_by TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_until TEXT",
        "ALTER TABLE jobs ADD COLUMN run_after TEXT",
        "CREATE INDEX idx_jobs_kind_status_id ON jobs (kind, status, id)",
        "CREATE INDEX idx_jobs_claimed_by ON jobs (claimed_by)",
        "CREATE TABLE checkpoints (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, meta TEXT,"
        " data BYTEA NOT NULL, created_at TEXT)",
        "CREATE UNIQUE INDEX idx_checkpoints_name ON checkpoints (name)",
        "CREATE INDEX idx_checkpoints_kind_id ON checkpoints (kind, id)",
        "CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until TEXT NOT NULL, acquired_at TEXT)",
    )),
    Migration("_m7_parked_jobs_and_health", (
        "ALTER TABLE jobs ADD COLUMN error_kind TEXT",
        "CREATE TABLE health (name TEXT PRIMARY KEY, ok_at TEXT, failed_at TEXT, error TEXT)",
        "UPDATE jobs SET status = 'pending', attempts = 0, run_after = NULL, claimed_by = NULL, lease_until = NULL"
        " WHERE status = 'failed'",
    )),
]
SCHEMA_VERSION = len(MIGRATIONS)
assert SCHEMA_VERSION == len(SQLITE_MIGRATIONS), "every SQLite migration needs its PostgreSQL twin"


def schema_version(pg: Postgres) -> int:
    """The last migration applied to the database (0 for a new one)."""
    if pg.one("SELECT to_regclass('meta') IS NOT NULL AS present")["present"] is False:
        return 0
    row = pg.one("SELECT value FROM meta WHERE key = 'schema_version'")
    return int(row["value"]) if row else 0


def migrate(pg: Postgres) -> None:
    """Apply the migrations the database lacks, in one transaction under an advisory lock (processes starting
    together wait for the first); refuse a database written by a newer redline."""
    with pg.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        current = schema_version(pg)
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"store {pg.path} has schema {current}, newer than this redline "
                               f"({SCHEMA_VERSION}); upgrade redline")
        for number in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1].statements:
                conn.execute(statement)
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key)"
                         " DO UPDATE SET value = excluded.value", (str(number),))


class PostgresStore(SQLStore):
    """The store in a PostgreSQL database (``url``: ``postgresql://user:password@host:port/dbname``), through a
    pool of ``pool_size`` connections per process.

    >>> store = PostgresStore("postgresql://redline@db/redline")  # doctest: +SKIP
    """

    def __init__(self, url: str, *, pool_size: int = 8):
        sql = Postgres(url, pool_size=pool_size)
        try:
            migrate(sql)
        except BaseException:
            sql.close()
            raise
        super().__init__(sql)

    @property
    def schema_version(self) -> int:
        return schema_version(self._sql)
