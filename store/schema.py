"""The schema as forward migrations numbered from 1; ``meta.schema_version`` records the last one applied."""

from __future__ import annotations

from typing import Callable

import sqlite_utils

from ._sqlite import SQLite

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["users"].create({"id": int, "tenant": str, "name": str, "created_at": str, "version": int},
                       pk="id", not_null={"tenant", "name"}, defaults={"version": 0})
    db["users"].create_index(["tenant", "name"], unique=True)
    db["interactions"].create({
        "id": str, "user_id": int, "task": str, "context": str, "context_vector": bytes,
        "prompt": str, "draft": str, "preference_used": str, "preference_ids": str,
        "neighbours": str, "candidates": str, "strategy": str, "model": str,
        "tokens_in": int, "tokens_out": int, "timings": str, "created_at": str,
    }, pk="id", foreign_keys=[("user_id", "users", "id")])
    db["interactions"].create_index(["user_id", "created_at"])
    db["edits"].create({
        "interaction_id": str, "user_id": int, "edited_text": str, "cost": int, "is_edit": int,
        "created_at": str, "learned_at": str, "preference_id": int,
    }, pk="interaction_id", foreign_keys=[("interaction_id", "interactions", "id")])
    db["edits"].create_index(["user_id", "created_at"])
    db["preferences"].create({
        "id": int, "user_id": int, "text": str, "kind": str, "context_vector": bytes,
        "interaction_id": str, "created_at": str, "updated_at": str, "user_edited": int,
    }, pk="id", foreign_keys=[("user_id", "users", "id")], defaults={"user_edited": 0})
    db["preferences"].create_index(["user_id", "id"])
    db["pairs"].create({
        "id": int, "user_id": int, "interaction_id": str, "context": str, "chosen": str,
        "rejected": str, "source": str, "created_at": str,
    }, pk="id")
    db["pairs"].create_index(["user_id"])
    db["router_states"].create({"user_id": int, "weights": str, "steps": int, "updated_at": str},
                               pk="user_id")
    db["jobs"].create({
        "id": int, "kind": str, "interaction_id": str, "status": str, "attempts": int,
        "error": str, "created_at": str, "updated_at": str,
    }, pk="id", defaults={"attempts": 0})
    db["jobs"].create_index(["kind", "interaction_id"], unique=True)
    db["jobs"].create_index(["status", "id"])
    db["api_keys"].create({
        "id": int, "tenant": str, "name": str, "key_hash": str, "prefix": str,
        "created_at": str, "revoked_at": str,
    }, pk="id")
    db["api_keys"].create_index(["key_hash"], unique=True)
    db["aggregations"].create({"key": str, "text": str, "created_at": str}, pk="key")


def _m2_aggregation_owner(db: sqlite_utils.Database) -> None:
    """Cached aggregations get the id of the user whose preferences they combine, so a hard delete
    can remove them. Rows cached before this have no owner and their key is a one-way hash, so they
    cannot be attributed: the cache is emptied (it refills on demand, one LLM call per neighbourhood)."""
    db.execute("DELETE FROM aggregations")
    db["aggregations"].add_column("user_id", int)
    db["aggregations"].create_index(["user_id"])


def _m3_edit_rules(db: sqlite_utils.Database) -> None:
    """Learned edit rules: an interaction keeps the draft as generated (``raw_draft``, before the user's rules
    changed it; NULL when they did not) and the ids of the rules applied; each user's rules, unique on
    (user, key); one observation per (rule, interaction): did that edit support or contradict the rule."""
    db["interactions"].add_column("raw_draft", str)
    db["interactions"].add_column("applied_rules", str)
    db["rules"].create({
        "id": int, "user_id": int, "key": str, "kind": str, "params": str, "text": str, "origin": str,
        "enabled": int, "support": int, "contradictions": int, "first_seen": str, "last_seen": str,
        "created_at": str, "updated_at": str,
    }, pk="id", foreign_keys=[("user_id", "users", "id")], not_null={"user_id", "key", "kind", "origin"},
        defaults={"support": 0, "contradictions": 0})
    db["rules"].create_index(["user_id", "key"], unique=True)
    db["rule_observations"].create({"rule_id": int, "interaction_id": str, "supported": int, "created_at": str},
                                   pk=("rule_id", "interaction_id"), foreign_keys=[("rule_id", "rules", "id")],
                                   not_null={"rule_id", "interaction_id", "supported"})
    db["rule_observations"].create_index(["interaction_id"])


def _m4_pair_features(db: sqlite_utils.Database) -> None:
    """Each pair's reward features, computed once when the pair is learned (``version`` says which definition), and
    its context's vector, in a table of their own: a retraining reads these small rows only, never the pairs'
    texts. The per-user reward state becomes one JSON document stamped with the checkpoint it was computed under;
    states over the old reward heads mean nothing under the new reward and are dropped (the next retraining
    replays every user's state from the stored features)."""
    db["pair_features"].create({"pair_id": int, "user_id": int, "version": int, "features": bytes,
                                "context_vector": bytes}, pk="pair_id")
    db["pair_features"].create_index(["user_id"])
    db["router_states"].drop()
    db["router_states"].create({"user_id": int, "state": str, "checkpoint": str, "steps": int, "updated_at": str},
                               pk="user_id")


def _m5_ui_sessions(db: sqlite_utils.Database) -> None:
    """The inspector's browser sessions on the server, so logging out or revoking the key ends a session at once,
    in every process that serves it: a session is the sha256 of its random id (the cookie holds the id), the key it
    was opened with, the key's tenant and when it expires. And named secrets shared by every process on this
    store, first the one that signs the session cookies (it was ``DATA_DIR/session-secret``, one per host)."""
    db["ui_sessions"].create({"id_hash": str, "key_id": int, "tenant": str, "created_at": str, "expires_at": str},
                             pk="id_hash", foreign_keys=[("key_id", "api_keys", "id")],
                             not_null={"key_id", "tenant", "expires_at"})
    db["ui_sessions"].create_index(["key_id"])
    db["ui_sessions"].create_index(["expires_at"])
    db["secrets"].create({"name": str, "value": str, "created_at": str}, pk="name", not_null={"value"})


def _m6_shared_by_processes(db: sqlite_utils.Database) -> None:
    """What several processes (API and learners, one host or several) share goes into the store. Jobs are claimed:
    who holds one (``claimed_by``) until when (``lease_until``), and not before when it may run (``run_after``, a
    back-off). Reward checkpoints become rows (``checkpoints``: one blob each, the newest of a kind is current)
    instead of folders under the data directory; ``leases`` holds named leases (the retraining's, each learner's
    sign of life)."""
    for column in ("claimed_by", "lease_until", "run_after"):
        db["jobs"].add_column(column, str)
    db["jobs"].create_index(["kind", "status", "id"])
    db["jobs"].create_index(["claimed_by"])
    db["checkpoints"].create({"id": int, "kind": str, "name": str, "meta": str, "data": bytes, "created_at": str},
                             pk="id", not_null={"kind", "name", "data"})
    db["checkpoints"].create_index(["name"], unique=True)
    db["checkpoints"].create_index(["kind", "id"])
    db["leases"].create({"name": str, "owner": str, "until": str, "acquired_at": str}, pk="name",
                        not_null={"owner", "until"})


def _m7_parked_jobs_and_health(db: sqlite_utils.Database) -> None:
    """A learning job that keeps failing backs off and is then parked, not failed for good: ``error_kind`` says what
    failed its last attempt ('generator': the generator failed or was unreachable, so the job is retried once it
    answers again; 'error': anything else, retried on command). ``health`` holds, per part (the generator), when a
    call to it last succeeded and last failed (and why), written by every process, so any process's ``/ready``
    tells. Jobs that an older redline failed after five quick attempts are queued again, their attempts reset."""
    db["jobs"].add_column("error_kind", str)
    db["health"].create({"name": str, "ok_at": str, "failed_at": str, "error": str}, pk="name")
    db.execute("UPDATE jobs SET status = 'pending', attempts = 0, run_after = NULL, claimed_by = NULL,"
               " lease_until = NULL WHERE status = 'failed'")


# Forward migrations; append only. Each runs once, in its own transaction.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_initial, _m2_aggregation_owner, _m3_edit_rules,
                                                             _m4_pair_features, _m5_ui_sessions,
                                                             _m6_shared_by_processes, _m7_parked_jobs_and_health]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(sql: SQLite) -> int:
    """The last migration applied to the database (0 for a new one)."""
    if not sql.db["meta"].exists():
        return 0
    row = sql.one("SELECT value FROM meta WHERE key = 'schema_version'")
    return int(row["value"]) if row else 0


def migrate(sql: SQLite) -> None:
    """Apply the migrations the database lacks; refuse a database written by a newer redline."""
    with sql.transaction():
        if not sql.db["meta"].exists():
            sql.db["meta"].create({"key": str, "value": str}, pk="key")
        current = schema_version(sql)
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"store {sql.path} has schema {current}, newer than this redline "
                               f"({SCHEMA_VERSION}); upgrade redline")
        for number in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[number - 1](sql.db)
            sql.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                           (str(number),))
