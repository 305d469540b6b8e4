import sqlite3

import numpy as np
import pytest
from stores import columns, count, execute, job_counts, rows, tables

from redline.store import SCHEMA_VERSION, Conflict, NotFound, SQLiteStore, now_iso


@pytest.fixture
def fresh_store(any_store):
    """The tests below that take ``fresh_store`` run on each back-end: SQLite and PostgreSQL."""
    return any_store


def _interaction(store, user_id, draft="draft text", vec=None):
    vec = np.ones(4, dtype=np.float32) / 2 if vec is None else vec
    return store.add_interaction(user_id, task="summarize", context="ctx", context_vector=vec, prompt=[],
                                 draft=draft, preference_used="be brief", preference_ids=[], neighbours=[],
                                 candidates=[], strategy="greedy", model="m", tokens_in=1, tokens_out=2,
                                 timings={"embed_ms": 1.0})


def test_schema_version_and_reopen(tmp_path):
    path = tmp_path / "r.db"
    store = SQLiteStore(path)
    assert store.schema_version == SCHEMA_VERSION
    uid = store.user_id("t", "alice")
    store.close()
    again = SQLiteStore(path)
    assert again.user_id("t", "alice", create=False) == uid
    assert again._sql.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this redline"):
        SQLiteStore(path)


def test_users_are_per_tenant(fresh_store):
    a = fresh_store.user_id("t1", "alice")
    b = fresh_store.user_id("t2", "alice")
    assert a != b
    assert fresh_store.user_id("t1", "alice") == a
    with pytest.raises(NotFound):
        fresh_store.user_id("t1", "nobody", create=False)


def test_interaction_roundtrip_and_tenant_check(fresh_store):
    uid = fresh_store.user_id("t1", "alice")
    iid = _interaction(fresh_store, uid)
    row = fresh_store.interaction(iid)
    assert row["draft"] == "draft text" and row["user"] == "alice"
    assert row["timings"] == {"embed_ms": 1.0}
    np.testing.assert_allclose(row["context_vector"], np.ones(4) / 2)
    with pytest.raises(NotFound):
        fresh_store.interaction(iid, tenant="t2")


def test_submit_edit_is_idempotent_and_conflicts_on_other_text(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _interaction(fresh_store, uid)
    row, created = fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    assert created and row["cost"] == 2
    row2, created2 = fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    assert not created2 and row2["created_at"] == row["created_at"]
    with pytest.raises(Conflict):
        fresh_store.submit_edit(iid, "something else", cost=3, is_edit=True)
    assert job_counts(fresh_store) == {"pending": 1}
    with pytest.raises(NotFound):
        fresh_store.submit_edit("nope", "x", cost=1, is_edit=True)


def test_complete_learning_is_atomic_and_once(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _interaction(fresh_store, uid)
    fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    v0 = fresh_store.user_version(uid)
    pid = fresh_store.complete_learning(
        iid, preference={"text": "short", "kind": "inferred", "context_vector": np.ones(4, dtype=np.float32)},
        pair={"context": "ctx", "chosen": "kept", "rejected": "draft text"})
    assert pid is not None
    assert fresh_store.user_version(uid) == v0 + 1
    assert fresh_store.edit(iid)["preference_id"] == pid
    assert job_counts(fresh_store) == {"done": 1}
    assert len(fresh_store.pairs(user_id=uid)) == 1
    first = fresh_store.pairs()[0]["id"]
    assert fresh_store.count_pairs() == 1 and fresh_store.count_pairs(since_id=first) == 0
    with pytest.raises(Conflict):
        fresh_store.complete_learning(iid, preference={"text": "again", "kind": "inferred",
                                                       "context_vector": np.ones(4, dtype=np.float32)}, pair=None)
    assert fresh_store.count_preferences(uid) == 1


def test_failed_learning_step_writes_nothing(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _interaction(fresh_store, uid)
    fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    with pytest.raises(KeyError):  # the pair dict is malformed after the preference row was inserted
        fresh_store.complete_learning(iid, preference={"text": "p", "kind": "inferred",
                                                       "context_vector": np.ones(4, dtype=np.float32)},
                                      pair={"context": "ctx"})
    assert fresh_store.count_preferences(uid) == 0
    assert fresh_store.edit(iid)["learned_at"] is None


def test_preferences_update_delete_and_user_delete(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _interaction(fresh_store, uid)
    fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    pid = fresh_store.complete_learning(iid, preference={"text": "short", "kind": "inferred",
                                                         "context_vector": np.ones(4, dtype=np.float32)}, pair=None)
    items = fresh_store.preferences(uid)
    assert items[0]["draft"] == "draft text" and items[0]["edited_text"] == "kept"
    updated = fresh_store.update_preference(uid, pid, "very short")
    assert updated["text"] == "very short" and updated["user_edited"] == 1
    assert updated["draft"] == "draft text" and updated["edited_text"] == "kept"  # as preferences() lists it
    other = fresh_store.user_id("t", "bob")
    with pytest.raises(NotFound):
        fresh_store.update_preference(other, pid, "hijack")
    with pytest.raises(NotFound):
        fresh_store.delete_preference(other, pid)
    fresh_store.delete_preference(uid, pid)
    assert fresh_store.count_preferences(uid) == 0
    removed = fresh_store.delete_user(uid)
    assert removed["interactions"] == 1 and removed["users"] == 1 and removed["jobs"] == 1
    for table in ("interactions", "edits", "preferences", "pairs", "jobs"):
        assert count(fresh_store, table) == 0, table
    assert fresh_store.user_id("t", "bob", create=False) == other


def _rule_evidence(interaction_id, supported=True, key="replace_phrase:utilize", prune_after=50, new=True):
    rule = {"key": key, "kind": "replace_phrase", "params": {"old": "utilize", "new": "use"}, "text": "use"}
    return {"new_rules": [rule] if new else [], "observations": [(key, interaction_id, supported)],
            "prune_after": prune_after}


def _learned(store, uid, supported=True, **rules):
    iid = _interaction(store, uid)
    store.submit_edit(iid, "kept", cost=2, is_edit=True)
    store.complete_learning(iid, preference=None, pair=None, rules=_rule_evidence(iid, supported, **rules))
    return iid


def test_rule_evidence_is_recorded_with_the_learning_step_and_counted_once(fresh_store):
    store = fresh_store
    uid = store.user_id("t", "alice")
    first = _learned(store, uid)
    second = _learned(store, uid)
    third = _learned(store, uid, supported=False)
    [rule] = store.rules.list(uid)
    assert (rule["support"], rule["contradictions"], rule["origin"], rule["enabled"]) == (2, 1, "mined", None)
    assert rule["params"] == {"old": "utilize", "new": "use"}
    assert rule["first_seen"] == store.edit(first)["created_at"]
    assert rule["last_seen"] == store.edit(third)["created_at"]
    assert store.rules.taught_by(uid) == {rule["id"]: [second, first]}
    assert store.rules.counts_over(uid, [first, third, "elsewhere"]) == {rule["id"]: (1, 1)}
    assert store.rules.history(uid, limit=2) == [(second, "draft text", "kept"), (third, "draft text", "kept")]
    with pytest.raises(Conflict):  # learned already: nothing is counted twice
        store.complete_learning(first, preference=None, pair=None, rules=_rule_evidence(first))
    with store._sql.transaction() as conn:  # the same observation again is ignored
        store.rules.record(conn, uid, new_rules=[], observations=[(rule["key"], first, True)], stamp="now")
    assert store.rules.get(uid, rule["id"])["support"] == 2


def test_a_failed_learning_step_leaves_no_rule(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _interaction(fresh_store, uid)
    fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    bad = _rule_evidence(iid)
    del bad["prune_after"]  # fails after the rules were written
    with pytest.raises(KeyError):
        fresh_store.complete_learning(iid, preference=None, pair=None, rules=bad)
    assert fresh_store.rules.list(uid) == [] and fresh_store.edit(iid)["learned_at"] is None


def test_rules_are_per_user_and_changes_check_the_owner(fresh_store):
    store = fresh_store
    alice, bob = store.user_id("t", "alice"), store.user_id("t", "bob")
    iid = _learned(store, alice)
    _learned(store, bob)
    rule_id = store.rules.list(alice)[0]["id"]
    for user in (bob, store.user_id("t2", "alice")):
        with pytest.raises(NotFound):
            store.rules.get(user, rule_id)
        with pytest.raises(NotFound):
            store.rules.update(user, rule_id, enabled=False)
        with pytest.raises(NotFound):
            store.rules.delete(user, rule_id)
    assert store.rules.update(alice, rule_id, enabled=False)["enabled"] is False
    assert store.rules.update(alice, rule_id, enabled=None)["enabled"] is None
    new = {"key": "replace_phrase:employ", "kind": "replace_phrase", "params": {"old": "utilize", "new": "employ"},
           "text": "employ"}
    changed = store.rules.update(alice, rule_id, rule=new, observations=[(iid, False)])
    assert (changed["key"], changed["origin"], changed["support"], changed["contradictions"]) == (
        "replace_phrase:employ", "user", 0, 1)
    _learned(store, alice, key="replace_phrase:other")
    with pytest.raises(Conflict):  # it would become another rule the user has
        store.rules.update(alice, rule_id, rule={**new, "key": "replace_phrase:other"}, observations=[])
    store.rules.delete(alice, rule_id)
    assert [r["key"] for r in store.rules.list(alice)] == ["replace_phrase:other"]
    assert len(store.rules.list(bob)) == 1
    assert count(store, "rule_observations") == 2  # alice's other rule and bob's


def test_one_off_rules_are_pruned_after_edits_that_gave_them_no_chance(fresh_store):
    store = fresh_store
    uid = store.user_id("t", "alice")
    _learned(store, uid, key="replace_phrase:once", prune_after=3)
    for _ in range(2):
        _learned(store, uid, key="replace_phrase:twice", prune_after=3)
    assert {r["key"] for r in store.rules.list(uid)} == {"replace_phrase:once", "replace_phrase:twice"}
    _learned(store, uid, key="replace_phrase:third", prune_after=3)  # 'once' has nothing in the last 3 edits
    assert {r["key"]: r["support"] for r in store.rules.list(uid)} == {"replace_phrase:twice": 2,
                                                                       "replace_phrase:third": 1}
    [twice] = [r for r in store.rules.list(uid) if r["key"] == "replace_phrase:twice"]
    store.rules.update(uid, twice["id"], enabled=True)
    for key in ("a", "b", "c"):  # supported twice, or switched on by the user: kept
        _learned(store, uid, key=f"replace_phrase:{key}", prune_after=3)
    assert "replace_phrase:twice" in {r["key"] for r in store.rules.list(uid)}
    assert "replace_phrase:third" not in {r["key"] for r in store.rules.list(uid)}


def test_export_includes_rules_with_their_observations(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _learned(fresh_store, uid)
    [rule] = fresh_store.export_user(uid)["rules"]
    assert rule["kind"] == "replace_phrase" and rule["support"] == 1
    assert [(o["interaction_id"], o["supported"]) for o in rule["observations"]] == [(iid, True)]


def _tables_with_user_id(store) -> list[str]:
    """Every table with a user_id column, found from the schema itself so a future table is covered."""
    return [t for t in tables(store) if "user_id" in columns(store, t)]


def _leftovers(store, uid, interaction_ids) -> dict[str, int]:
    found = {t: count(store, t, "user_id = ?", (uid,)) for t in _tables_with_user_id(store)}
    found["users"] = count(store, "users", "id = ?", (uid,))
    marks = ",".join("?" * len(interaction_ids))
    for t in tables(store):  # tables that point at the user's rows through an interaction id (jobs)
        if "interaction_id" in columns(store, t):
            found[f"{t}.interaction_id"] = count(store, t, f"interaction_id IN ({marks})", tuple(interaction_ids))
    return {k: v for k, v in found.items() if v}


def test_delete_user_leaves_no_row_that_references_the_user(fresh_store):
    store = fresh_store
    assert {"interactions", "edits", "preferences", "pairs", "pair_features", "router_states",
            "aggregations", "rules"} <= set(_tables_with_user_id(store))
    uid, other = store.user_id("t", "alice"), store.user_id("t", "bob")
    ids = []
    for who in (uid, other):
        learned = _interaction(store, who)
        store.submit_edit(learned, "kept", cost=2, is_edit=True)
        store.complete_learning(learned, preference={"text": "short", "kind": "inferred",
                                                     "context_vector": np.ones(4, dtype=np.float32)},
                                pair={"context": "ctx", "chosen": "kept", "rejected": "draft text"},
                                reward_state={"weights": [0.5, 0.5], "steps": 1},
                                rules=_rule_evidence(learned))
        queued = _interaction(store, who)
        store.submit_edit(queued, "queued", cost=1, is_edit=True)  # a pending job
        store.cache_aggregation(who, f"key-{who}", f"combined for {who}")
        if who == uid:
            ids = [learned, queued]
    store.add_pairs([{"user_id": uid, "context": "c", "chosen": "a", "rejected": "b"}])
    assert _leftovers(store, uid, ids)  # the check itself sees the user's rows

    removed = store.delete_user(uid)

    assert _leftovers(store, uid, ids) == {}
    assert removed == {"jobs": 2, "edits": 2, "preferences": 1, "pairs": 2, "pair_features": 0, "router_states": 1,
                       "aggregations": 1, "interactions": 2, "users": 1, "rules": 1, "rule_observations": 1}
    assert store.rules.list(other)[0]["support"] == 1  # bob keeps his rule
    assert store.cached_aggregation(other, f"key-{other}") == f"combined for {other}"  # bob keeps his
    assert store.count_preferences(other) == 1 and store.reward_state(other) is not None


def test_aggregations_belong_to_their_user_and_go_with_preference_changes(fresh_store):
    store = fresh_store
    uid, other = store.user_id("t", "alice"), store.user_id("t", "bob")
    iid = _interaction(store, uid)
    store.submit_edit(iid, "kept", cost=2, is_edit=True)
    pid = store.complete_learning(iid, preference={"text": "short", "kind": "inferred",
                                                   "context_vector": np.ones(4, dtype=np.float32)}, pair=None)
    store.cache_aggregation(uid, "k", "alice's aggregate")
    store.cache_aggregation(other, "k2", "bob's aggregate")
    assert store.cached_aggregation(uid, "k") == "alice's aggregate"
    assert store.cached_aggregation(other, "k") is None  # read only by its owner
    assert [a["text"] for a in store.export_user(uid)["aggregations"]] == ["alice's aggregate"]
    store.update_preference(uid, pid, "very short")  # the old text must not live on in an aggregate
    assert store.cached_aggregation(uid, "k") is None
    store.cache_aggregation(uid, "k", "again")
    store.delete_preference(uid, pid)
    assert store.cached_aggregation(uid, "k") is None
    assert store.cached_aggregation(other, "k2") == "bob's aggregate"


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_an_older_schema_opens_and_upgrades(tmp_path, version):
    import sqlite_utils

    from redline.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    db["meta"].create({"key": str, "value": str}, pk="key")
    for migration in MIGRATIONS[:version]:
        migration(db)
    db["meta"].insert({"key": "schema_version", "value": str(version)})
    db.execute("INSERT INTO users (tenant, name, created_at, version) VALUES ('t', 'alice', 'then', 3)")
    if version < 2:  # an aggregation cached before rows had an owner
        db.execute("INSERT INTO aggregations (key, text, created_at) VALUES ('k', 'old', 'then')")
    if version < 3:  # a pair without features and a routing state over the old reward heads
        db.execute("INSERT INTO pairs (user_id, context, chosen, rejected, source, created_at)"
                   " VALUES (1, 'c', 'kept', 'draft', 'edit', 'then')")
        db.execute("INSERT INTO router_states (user_id, weights, steps, updated_at) VALUES (1, '[0.5, 0.5]', 1, 'x')")
    db.conn.commit()
    db.close()

    store = SQLiteStore(path)
    assert store.schema_version == SCHEMA_VERSION
    uid = store.user_id("t", "alice", create=False)
    assert store.user_version(uid) == 3  # existing data kept
    cols = {c[1] for c in store._sql.db.execute("PRAGMA table_info(aggregations)")}
    assert "user_id" in cols
    assert any(ix.columns == ["user_id"] for ix in store._sql.db["aggregations"].indexes)
    assert store._sql.db.execute("SELECT COUNT(*) FROM aggregations WHERE user_id IS NULL").fetchone()[0] == 0
    assert {"rules", "rule_observations"} <= set(store._sql.db.table_names())
    assert {"raw_draft", "applied_rules"} <= {c[1] for c in store._sql.db.execute("PRAGMA table_info(interactions)")}
    store.cache_aggregation(uid, "k", "new")
    if version < 3:
        assert store.reward_state(uid) is None  # meaningless under the new reward: replayed at the next training
        assert [p["chosen"] for p in store.pairs_without_features(1)] == ["kept"]  # its features come later
    assert store.delete_user(uid)["aggregations"] == 1
    store.close()
    assert SQLiteStore(path).schema_version == SCHEMA_VERSION  # reopening does not migrate again


def test_jobs_an_older_redline_failed_are_queued_again_by_the_upgrade(tmp_path):
    """Schema 7: 'failed' was for good after five quick attempts; those jobs are queued again, attempts reset."""
    import sqlite_utils

    from redline.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    db["meta"].create({"key": str, "value": str}, pk="key")
    for migration in MIGRATIONS[:6]:
        migration(db)
    db["meta"].insert({"key": "schema_version", "value": "6"})
    for i, status in enumerate(("failed", "done", "failed", "pending")):
        db.execute("INSERT INTO jobs (kind, interaction_id, status, attempts, error, created_at, updated_at)"
                   " VALUES ('learn', ?, ?, ?, 'KeyError', 'then', 'then')", (f"i{i}", status, 5 if i != 3 else 1))
    db.conn.commit()
    db.close()
    store = SQLiteStore(path)
    assert job_counts(store) == {"pending": 3, "done": 1}
    assert [(j["interaction_id"], j["attempts"]) for j in store.jobs.claim("me", limit=10)] == [
        ("i0", 1), ("i2", 1), ("i3", 2)]
    assert store.health.get("generator") is None and "error_kind" in store._sql.db["jobs"].columns_dict
    store.close()


def test_health_says_down_while_the_newest_failure_is_recent_and_newer_than_the_last_success(fresh_store):
    store = fresh_store
    assert store.health.down("generator", memory_seconds=60) is None  # nothing recorded
    store.health.ok("generator", stamp=now_iso(-10))
    store.health.failed("generator", "KeyError: 'choices'", stamp=now_iso(-5))
    assert store.health.down("generator", memory_seconds=60)["error"] == "KeyError: 'choices'"
    assert store.health.down("generator", memory_seconds=2) is None  # forgotten after the memory
    store.health.ok("generator")
    assert store.health.down("generator", memory_seconds=60) is None  # answered since
    row = store.health.get("generator")
    assert row["failed_at"] < row["ok_at"] and row["error"] == "KeyError: 'choices'"


def test_retrying_jobs_picks_by_cause_and_tenant(fresh_store):
    store = fresh_store
    ids = {}
    for tenant in ("t1", "t2"):
        uid = store.user_id(tenant, "alice")
        for kind in ("generator", "error"):
            iid = _interaction(store, uid)
            store.submit_edit(iid, "kept", cost=1, is_edit=True)
            ids[tenant, kind] = store.jobs.get(iid)["id"]
    jobs = store.jobs.claim("me", limit=10)
    for job in jobs:
        kind = "generator" if job["id"] in (ids["t1", "generator"], ids["t2", "generator"]) else "error"
        store.jobs.mark(job["id"], "parked", owner="me", error="boom", error_kind=kind)
    store.jobs.mark(ids["t2", "error"], "pending", error="boom", error_kind="error", run_after=now_iso(3600))
    assert store.jobs.parked() == 3 and store.jobs.failing(error_kind="generator") == 2
    assert store.jobs.retry(error_kind="generator", tenant="t1") == 1
    assert store.jobs.retry(tenant="t2", waiting=False) == 1  # t2's parked one; the one backing off waits
    assert store.jobs.retry(tenant="t2") == 1
    assert store.jobs.parked() == 1 and job_counts(store) == {"pending": 3, "parked": 1}
    assert {j["id"] for j in store.jobs.claim("me", limit=10)} == {ids["t1", "generator"], ids["t2", "generator"],
                                                                   ids["t2", "error"]}
    backing_off = ids["t1", "generator"]
    store.jobs.mark(backing_off, "pending", error="down", error_kind="generator", run_after=now_iso(3600))
    assert store.jobs.retry(error_kind="generator", reset_waiting=False) == 1
    [row] = rows(store, "SELECT interaction_id FROM jobs WHERE id = ?", (backing_off,))
    job = store.jobs.get(row["interaction_id"])
    assert (job["attempts"], job["run_after"], job["error_kind"]) == (1, None, "generator")  # attempts kept


def _files_holding(folder, marker: str) -> dict[str, int]:
    """Every file under ``folder`` whose raw bytes hold ``marker`` (UTF-8), with the count."""
    hits = {p.name: p.read_bytes().count(marker.encode()) for p in folder.iterdir() if p.is_file()}
    return {name: n for name, n in hits.items() if n}


def test_secure_delete_is_set_on_the_connection_whatever_the_build_default(tmp_path, monkeypatch):
    """Issue 16.4: not left to the SQLite build (Debian's turns it on, most do not): emulate one that does not."""
    import redline.store._sqlite as sqlite_module

    real_connect = sqlite3.connect

    def connect_default_off(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    monkeypatch.setattr(sqlite_module.sqlite3, "connect", connect_default_off)
    store = SQLiteStore(tmp_path / "r.db")
    assert store._sql.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    store.close()


def test_hard_delete_leaves_no_text_in_the_database_or_the_wal(tmp_path):
    """Issue 16.4: after delete_user the user's texts are in no file (zeroed pages, WAL checkpointed and
    truncated), while another user's rows are intact; close() merges the WAL and removes it."""
    store = SQLiteStore(tmp_path / "r.db")
    for name in ("leaver", "keeper"):
        uid = store.user_id("t", name)
        for r in range(3):
            iid = store.add_interaction(
                uid, task="summarize", context=f"{name}-marker context {r} " + "filler words " * 500,
                context_vector=np.ones(4, dtype=np.float32) / 2, prompt=[], draft=f"{name}-marker draft {r}",
                preference_used=None, preference_ids=[], neighbours=[], candidates=[], strategy="greedy", model="m",
                tokens_in=1, tokens_out=2, timings={})
            store.submit_edit(iid, f"{name}-marker kept {r}", cost=3, is_edit=True)
            store.complete_learning(iid, preference={"text": f"{name}-marker preference {r}", "kind": "inferred",
                                                     "context_vector": np.ones(4, dtype=np.float32) / 2},
                                    pair={"context": f"{name}-marker ctx", "chosen": "a", "rejected": "b"})
    assert _files_holding(tmp_path, "leaver-marker")  # the scan sees what is there
    store.delete_user(store.user_id("t", "leaver", create=False))
    assert _files_holding(tmp_path, "leaver-marker") == {}
    assert (tmp_path / "r.db-wal").stat().st_size == 0
    store.close()
    assert not (tmp_path / "r.db-wal").exists()
    assert _files_holding(tmp_path, "leaver-marker") == {}
    assert "r.db" in _files_holding(tmp_path, "keeper-marker")


def test_pair_features_are_stored_once_and_read_as_arrays(fresh_store):
    store = fresh_store
    uid, other = store.user_id("t", "alice"), store.user_id("t", "bob")
    learned = _interaction(store, uid)
    store.submit_edit(learned, "kept", cost=2, is_edit=True)
    pair = {"context": "ctx", "chosen": "kept", "rejected": "draft text", "features": np.array([0.5, -1.0, 2.0]),
            "features_version": 7, "context_vector": np.full(4, 0.5, dtype=np.float32)}
    state = {"log_weights": [0.0], "sum": [0.5, -1.0, 2.0], "n": 1, "checkpoint": "ckpt-1"}
    store.complete_learning(learned, preference=None, pair=pair, reward_state=state)
    store.add_pairs([{"user_id": other, "context": "c", "chosen": "a", "rejected": "b",
                      "features": np.array([1.0, 2.0, 3.0]), "features_version": 7,
                      "context_vector": np.full(4, 0.25, dtype=np.float32)},
                     {"user_id": other, "context": "c", "chosen": "a", "rejected": "b"},  # an older redline's
                     {"user_id": None, "context": "c", "chosen": "a", "rejected": "b",
                      "features": np.zeros(3), "features_version": 7}])
    data = store.pair_features(7, contexts=True)
    assert data["user_ids"] == [uid, other, None] and data["features"].dtype == np.float64
    np.testing.assert_array_equal(data["features"], [[0.5, -1.0, 2.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(data["contexts"][0], np.full(4, 0.5))
    np.testing.assert_array_equal(data["contexts"][1], np.full(4, 0.25))
    assert np.isnan(data["contexts"][2]).all()  # none: a row of NaN
    assert store.pair_features(7)["contexts"] is None and store.pair_features(8)["ids"] == []
    assert store.pair_features(7, user_id=other)["ids"] == [data["ids"][1]]
    missing = store.pairs_without_features(7)
    assert len(missing) == 1 and set(missing[0]) == {"id", "user_id", "chosen", "rejected", "context_vector"}
    store.set_pair_features([{**missing[0], "features": np.array([9.0, 9.0, 9.0])}], 7)
    assert store.pairs_without_features(7) == [] and store.count_pair_features(7, user_id=other) == 2
    assert len(store.pairs_without_features(8)) == 4  # a new feature version: every pair again
    assert store.count_pairs(until_id=data["ids"][0]) == 1 and store.count_pairs(since_id=data["ids"][0]) == 3
    assert store.reward_state(uid) == state
    store.delete_user(other)
    store.put_reward_states({uid: {"n": 2}, other: {"n": 5}})  # bob is gone: no orphan row
    assert store.reward_state(uid) == {"n": 2} and store.reward_state(other) is None
    assert store.export_user(uid)["pairs"][0]["chosen"] == "kept"
    assert count(store, "pair_features", "user_id = ?", (other,)) == 0


def test_concurrent_edits_are_committed_together_and_a_conflict_rolls_back_only_its_own(tmp_path):
    """Group commit: edits submitted by many threads at once all land (one failing write does not undo the
    others), each is durable when submit_edit returns, and each queues its job."""
    import threading

    store = SQLiteStore(tmp_path / "r.db")
    uid = store.user_id("t", "alice")
    ids = [_interaction(store, uid) for _ in range(24)]
    store.submit_edit(ids[0], "first text", cost=1, is_edit=True)
    errors, barrier = [], threading.Barrier(24)

    def submit(iid, text):
        barrier.wait()
        try:
            store.submit_edit(iid, text, cost=1, is_edit=True)
        except Conflict as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(iid, "other text" if iid == ids[0] else f"kept {iid}"))
               for iid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 1
    with sqlite3.connect(tmp_path / "r.db") as other:  # committed: visible to another connection
        assert other.execute("SELECT COUNT(*) FROM edits").fetchone()[0] == 24
        assert other.execute("SELECT edited_text FROM edits WHERE interaction_id = ?", (ids[0],)).fetchone()[0] \
            == "first text"
        assert other.execute("SELECT COUNT(*) FROM jobs WHERE status = 'pending'").fetchone()[0] == 24


def _read_during_write(store, write_sql: str, params: tuple, read) -> tuple[bool, list]:
    """Run ``read()`` on another thread while a write transaction holding ``write_sql`` is open: whether it finished
    before the write ended, and what it returned."""
    import threading

    writing, done = threading.Event(), threading.Event()

    def long_write():
        with store._sql.transaction() as conn:
            conn.execute(write_sql, params)
            writing.set()
            done.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    writing.wait(5)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(read()))
    reader.start()
    reader.join(5)
    finished_while_writing = not reader.is_alive()
    done.set()
    writer.join(10)
    return finished_while_writing, seen


def test_reads_do_not_wait_for_a_write_in_progress(tmp_path):
    """Each thread reads on its own connection: a long write transaction elsewhere neither blocks it nor shows
    it uncommitted rows."""
    store = SQLiteStore(tmp_path / "r.db")
    uid = store.user_id("t", "alice")
    iid = _interaction(store, uid)
    finished, seen = _read_during_write(store, "UPDATE interactions SET draft = 'uncommitted' WHERE id = ?", (iid,),
                                        lambda: store.interaction(iid)["draft"])
    assert finished and seen == ["draft text"]
    assert store.interaction(iid)["draft"] == "uncommitted"
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.interaction(iid)


def test_a_snapshot_is_not_torn_by_a_commit_between_its_reads(tmp_path):
    """Reads inside ``snapshot()`` see one state: an export never shows an edit learned without its preference."""
    import threading

    store = SQLiteStore(tmp_path / "r.db")
    uid = store.user_id("t", "alice")
    iid = _interaction(store, uid)
    store.submit_edit(iid, "kept", cost=2, is_edit=True)
    seen = {}
    with store._sql.snapshot():
        seen["before"] = store._sql.query("SELECT COUNT(*) AS n FROM preferences")[0]["n"]
        learner = threading.Thread(target=store.complete_learning, args=(iid,), kwargs={
            "preference": {"text": "short", "kind": "inferred", "context_vector": np.ones(4, dtype=np.float32)},
            "pair": None})
        learner.start()
        learner.join()
        seen["learned_at"] = store.edit(iid)["learned_at"]
        seen["after"] = store._sql.query("SELECT COUNT(*) AS n FROM preferences")[0]["n"]
    assert seen == {"before": 0, "learned_at": None, "after": 0}  # the commit happened, the snapshot did not see it
    exported = store.export_user(uid)
    assert exported["edits"][0]["learned_at"] is not None and len(exported["preferences"]) == 1
    store.close()


def test_bulk_reads_do_not_wait_for_a_write_in_progress(tmp_path):
    """``pair_features`` (the retraining's bulk read, ``SQLite.tuples``) reads on the thread's own connection too."""
    store = SQLiteStore(tmp_path / "r.db")
    store.add_pairs([{"context": "c", "chosen": "kept", "rejected": "draft", "features": np.ones(3),
                      "features_version": 1}])
    finished, seen = _read_during_write(store, "DELETE FROM pair_features", (),
                                        lambda: len(store.pair_features(1)["ids"]))
    assert finished and seen == [1]
    store.close()


def _queue_edits(store, n: int) -> list[str]:
    uid = store.user_id("t", "alice")
    ids = [_interaction(store, uid) for _ in range(n)]
    for i, iid in enumerate(ids):
        store.submit_edit(iid, f"kept {i}", cost=1, is_edit=True)
    return ids


def test_jobs_are_claimed_by_one_owner_with_a_lease_and_reclaimed_when_it_ends(fresh_store):
    jobs = fresh_store.jobs
    ids = _queue_edits(fresh_store, 3)
    first = jobs.claim("a", limit=2, lease_seconds=60)
    assert [j["interaction_id"] for j in first] == ids[:2]  # oldest first
    assert {(j["status"], j["claimed_by"], j["attempts"]) for j in first} == {("running", "a", 1)}
    assert [j["interaction_id"] for j in jobs.claim("b", limit=5)] == ids[2:]  # never a job "a" holds
    assert jobs.claim("b") == [] and not jobs.claimable()
    # "a" dies: once its lease ends, its jobs are claimable again, and its late writes change nothing
    execute(fresh_store, "UPDATE jobs SET lease_until = '2000-01-01' WHERE claimed_by = 'a'")
    again = jobs.claim("c", limit=5)
    assert [j["interaction_id"] for j in again] == ids[:2] and {j["attempts"] for j in again} == {2}
    jobs.mark(again[0]["id"], "pending", owner="a")
    jobs.release([again[1]["id"]], owner="a")
    assert {j["claimed_by"] for j in rows(fresh_store, "SELECT * FROM jobs WHERE status = 'running'")} == {"b", "c"}
    assert jobs.renew("c", lease_seconds=60) == 2
    assert jobs.release_owner("c") == 2 and job_counts(fresh_store) == {"pending": 2, "running": 1}
    # a job held back (run_after ahead) is not claimable before then
    jobs.mark(again[0]["id"], "pending", owner=None, run_after="2999-01-01")
    assert [j["id"] for j in jobs.claim("d", limit=5)] == [again[1]["id"]]


def test_two_stores_on_one_database_never_claim_the_same_job(store_factory):
    """Two processes' stores (one connection each on SQLite, a pool each on PostgreSQL: FOR UPDATE SKIP LOCKED) and
    several threads claiming at once: every job is claimed exactly once."""
    import random
    import threading

    stores = [store_factory(), store_factory()]
    _queue_edits(stores[0], 300)
    claimed: list[int] = []
    lock = threading.Lock()

    def learner(store, name):
        rng = random.Random(name)
        while batch := store.jobs.claim(name, limit=rng.randint(1, 8)):
            with lock:
                claimed.extend(j["id"] for j in batch)

    threads = [threading.Thread(target=learner, args=(stores[i % 2], f"learner-{i}")) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(claimed) == 300 and len(set(claimed)) == 300
    assert job_counts(stores[1]) == {"running": 300}


def test_a_hard_delete_that_removes_pairs_queues_one_retrain_in_its_transaction(fresh_store):
    uid = fresh_store.user_id("t", "alice")
    iid = _interaction(fresh_store, uid)
    fresh_store.submit_edit(iid, "kept", cost=2, is_edit=True)
    other = fresh_store.user_id("t", "bob")  # no pairs: nothing to retrain for
    fresh_store.delete_user(other)
    assert job_counts(fresh_store, kind="retrain") == {}
    fresh_store.complete_learning(iid, preference=None, pair={"context": "ctx", "chosen": "kept", "rejected": "d"})
    fresh_store.delete_user(uid)
    assert job_counts(fresh_store, kind="retrain") == {"pending": 1} and job_counts(fresh_store, kind="learn") == {}
    assert [j["kind"] for j in fresh_store.jobs.claim("a", kind="retrain")] == ["retrain"]


def test_leases_are_held_by_one_owner_until_they_end(fresh_store):
    leases = fresh_store.leases
    assert leases.acquire("retrain", "a", seconds=60) and not leases.acquire("retrain", "b", seconds=60)
    assert leases.acquire("retrain", "a", seconds=60)  # the holder renews by acquiring again
    assert leases.holder("retrain") == "a" and leases.renew("retrain", "a", seconds=60)
    assert not leases.renew("retrain", "b", seconds=60)
    leases.release("retrain", "b")  # only the holder can
    assert leases.holder("retrain") == "a"
    execute(fresh_store, "UPDATE leases SET until = '2000-01-01'")  # "a" died
    assert leases.holder("retrain") is None and leases.acquire("retrain", "b", seconds=60)
    leases.release("retrain", "b")
    assert leases.holder("retrain") is None
    leases.acquire("learner:x", "x", seconds=60)
    leases.acquire("learner:y", "y", seconds=-1)  # already over
    assert leases.live("learner:") == ["learner:x"]


def test_checkpoints_are_rows_the_newest_current_older_ones_pruned(fresh_store):
    ckpts = fresh_store.checkpoints
    assert ckpts.current("reward") is None
    names = [ckpts.publish("reward", bytes([i]) * 10, {"pairs": i}) for i in range(3)]
    assert ckpts.current("reward") == {"name": names[-1], "meta": {"pairs": 2}}
    assert ckpts.names("reward") == names[-2:] and ckpts.data(names[-1]) == b"\x02" * 10
    assert ckpts.data(names[0]) is None
    only = ckpts.publish("reward", b"new", keep=1)
    assert ckpts.names("reward") == [only]
    assert ckpts.remove_all("reward") == 1 and ckpts.current("reward") is None


def test_a_user_created_again_under_a_reused_id_has_another_stamp(tmp_path):
    """Per-process caches are checked against ``user_stamp``: a user deleted and created again under the same
    id (SQLite reuses the largest rowid) never matches what a cache kept of the deleted one."""
    import time

    store = SQLiteStore(tmp_path / "r.db")
    uid = store.user_id("t", "alice")
    before = store.user_stamp(uid)
    store.delete_user(uid)
    time.sleep(0.01)
    again = store.user_id("t", "alice")
    assert again == uid and store.user_stamp(again) != before and store.user_stamp(again)[1] == before[1]
    store.close()


def test_postgres_migrations_match_sqlites_one_for_one(tmp_path, postgres_url):
    """Every SQLite migration has its PostgreSQL twin (same number and name), and both leave the same tables with
    the same columns (PostgreSQL's edits add ``id``, the insertion order SQLite keeps as the rowid)."""
    from redline.store import PostgresStore, postgres, schema

    assert [m.name for m in postgres.MIGRATIONS] == [m.__name__ for m in schema.MIGRATIONS]
    lite, pg = SQLiteStore(tmp_path / "r.db"), PostgresStore(postgres_url)
    assert lite.schema_version == pg.schema_version == SCHEMA_VERSION == postgres.SCHEMA_VERSION
    assert set(tables(lite)) == set(tables(pg))
    for table in tables(lite):
        extra = {"id"} if table == "edits" else set()
        assert set(columns(pg, table)) == set(columns(lite, table)) | extra, table
    lite.close()
    pg.close()


def test_processes_starting_together_migrate_a_postgres_database_once(postgres_url):
    import threading

    from redline.store import PostgresStore

    opened, errors = [], []

    def start():
        try:
            opened.append(PostgresStore(postgres_url, pool_size=2))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(opened) == 4
    assert {s.schema_version for s in opened} == {SCHEMA_VERSION}
    assert rows(opened[0], "SELECT value FROM meta WHERE key = 'schema_version'") == [{"value": str(SCHEMA_VERSION)}]
    for s in opened:
        s.close()


def test_a_postgres_learner_waiting_for_jobs_is_woken_by_another_process_queueing_one(store_factory):
    """LISTEN/NOTIFY: a job queued through another store (another process) wakes ``jobs.wait`` at once on
    PostgreSQL; SQLite's learners poll (``wait`` times out)."""
    import threading

    learner, api = store_factory(), store_factory()
    learner.jobs.wait(0.5)  # starts listening (PostgreSQL)
    woken, postgres = [], learner.backend == "postgresql"
    waiter = threading.Thread(target=lambda: woken.append(learner.jobs.wait(30 if postgres else 0.5)))
    waiter.start()
    _queue_edits(api, 1)
    waiter.join(40)
    assert woken == [postgres]


def test_edits_and_learning_racing_a_hard_delete_leave_nothing_of_the_user(store_factory):
    """Edits submitted and learned by other processes while the user is hard-deleted: each write is wholly before
    the delete (and removed by it) or finds the user gone (``NotFound``/``Conflict``); never a deadlock, never a
    row left behind (PostgreSQL: every such write locks the user's row first)."""
    import threading

    api, learner, deleter = store_factory(), store_factory(), store_factory()
    uid = api.user_id("t", "alice")
    ids = [_interaction(api, uid) for _ in range(40)]
    unexpected: list[BaseException] = []

    def submit():
        for i, iid in enumerate(ids):
            try:
                api.submit_edit(iid, f"kept {i}", cost=1, is_edit=True)
            except NotFound:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                unexpected.append(exc)

    def learn():
        for iid in ids:
            try:
                learner.complete_learnings([{"interaction_id": iid, "preference": {
                    "text": "p", "kind": "inferred", "context_vector": np.ones(4, dtype=np.float32)},
                    "pair": {"context": "c", "chosen": "k", "rejected": "d"}}])
            except BaseException as exc:  # noqa: BLE001 - reported below
                unexpected.append(exc)

    threads = [threading.Thread(target=submit), threading.Thread(target=learn)]
    for t in threads:
        t.start()
    deleter.delete_user(uid)
    for t in threads:
        t.join(60)
    assert unexpected == []
    assert _leftovers(deleter, uid, ids) == {}


def test_a_percent_sign_in_sql_or_text_reaches_either_database_as_itself(fresh_store):
    uid = fresh_store.user_id("t", "50% off")
    assert rows(fresh_store, "SELECT name FROM users WHERE name LIKE '50%'") == [{"name": "50% off"}]
    assert fresh_store.user(uid)["name"] == "50% off"


def test_a_rules_observed_contexts_are_its_observations_vectors_on_both_back_ends(store_factory):
    store = store_factory()
    uid, other = store.user_id("t", "alice"), store.user_id("t", "bob")
    vectors = [np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32),
               np.array([0, 0, 1, 0], np.float32)]
    for vec, supported in zip(vectors, (True, False, True)):
        iid = _interaction(store, uid, vec=vec)
        store.submit_edit(iid, "kept", cost=2, is_edit=True)
        store.complete_learning(iid, preference=None, pair=None, rules=_rule_evidence(iid, supported))
    [rule] = store.rules.list(uid)
    observed = store.rules.observed_contexts(uid, [rule["id"], rule["id"]])
    assert list(observed) == [rule["id"]]
    got, made = observed[rule["id"]]
    by_row = sorted(zip(map(tuple, got), made))
    assert by_row == sorted(zip(map(tuple, vectors), (True, False, True)))
    assert store.rules.observed_contexts(other, [rule["id"]]) == {}  # another user's rule: nothing
    assert store.rules.observed_contexts(uid, []) == {}


def test_renewing_leases_skips_a_job_its_learning_step_is_finishing_instead_of_waiting(postgres_url):
    """PostgreSQL: a learning step finishes its batch's jobs one by one in one transaction while the owner's lease
    thread renews them all in one UPDATE. Waiting for the row the step holds could close a circle (the step goes on
    to a row the renewal locked): the renewal skips that row, and the step commits."""
    import threading

    from redline.store import PostgresStore

    store = PostgresStore(postgres_url, pool_size=4)
    try:
        _queue_edits(store, 2)
        first, second = store.jobs.claim("w1", limit=2, lease_seconds=1)
        step_holds, renew_done, renewed = threading.Event(), threading.Event(), []

        def learning_step():
            with store._sql.transaction() as conn:
                conn.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (second["id"],))
                step_holds.set()
                renew_done.wait(10)
                conn.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (first["id"],))

        def renew():
            renewed.append(store.jobs.renew("w1", lease_seconds=600))
            renew_done.set()

        renewer = threading.Thread(target=renew)
        step = threading.Thread(target=learning_step)
        step.start()
        assert step_holds.wait(10)
        renewer.start()
        renewer.join(10)
        finished_while_held = not renewer.is_alive()
        step.join(20)
        assert finished_while_held and renewed == [1]  # the job the step holds was skipped, the other renewed
        assert job_counts(store) == {"done": 2}  # and the step committed
    finally:
        store.close()


def test_writing_retrained_reward_states_waits_its_turn_behind_a_learning_step(postgres_url):
    """PostgreSQL: a learning step locks its users, then writes their reward states in its batch's order; a
    retraining writes every user's state. Both in id order of the users' locks: the retraining waits for the step
    and writes after it, where it used to take one state row and wait for the next while the step waited for that
    one (a deadlock: the step was aborted)."""
    import threading

    import psycopg

    from redline.store import PostgresStore
    from redline.store.pairs import put_reward_state

    from servers import wait_until

    store = PostgresStore(postgres_url, pool_size=4)
    try:
        a, b = sorted(store.user_id("t", name) for name in ("a", "b"))
        errors, step_wrote = [], threading.Event()

        def waiting_backends() -> int:  # on a connection of its own: a transaction sees one snapshot of the view
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                return conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                    " AND datname = current_database()").fetchone()[0]

        def learning_step():
            try:
                with store._sql.transaction() as conn:
                    store._sql.lock_users(conn, [a, b])
                    put_reward_state(conn, b, {"n": 1, "by": "step"})
                    step_wrote.set()
                    wait_until(lambda: waiting_backends() >= 1, 10, "the retraining's write never waited")
                    put_reward_state(conn, a, {"n": 1, "by": "step"})
            except Exception as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

        def retraining():
            try:
                store.put_reward_states({a: {"n": 2, "by": "retrain"}, b: {"n": 2, "by": "retrain"}})
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        step = threading.Thread(target=learning_step)
        step.start()
        assert step_wrote.wait(10)
        retrain = threading.Thread(target=retraining)
        retrain.start()
        step.join(30)
        retrain.join(30)
        assert errors == []
        assert [store.reward_state(u)["by"] for u in (a, b)] == ["retrain", "retrain"]  # written after the step
    finally:
        store.close()
