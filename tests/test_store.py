import sqlite3

import numpy as np
import pytest

from retrieval import SCHEMA_VERSION, Conflict, NotFound, Store


def _interaction(store, user_id, draft="draft text", vec=None):
    vec = np.ones(4, dtype=np.float32) / 2 if vec is None else vec
    return store.add_interaction(user_id, task="summarize", context="ctx", context_vector=vec, prompt=[],
                                 draft=draft, preference_used="be brief", preference_ids=[], neighbours=[],
                                 candidates=[], strategy="greedy", model="m", tokens_in=1, tokens_out=2,
                                 timings={"embed_ms": 1.0})


def test_schema_version_and_reopen(tmp_path):
    path = tmp_path / "r.db"
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    uid = store.user_id("t", "alice")
    store.close()
    again = Store(path)
    assert again.user_id("t", "alice", create=False) == uid
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this redline"):
        Store(path)


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
    assert fresh_store.job_counts() == {"pending": 1}
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
    assert fresh_store.job_counts() == {"done": 1}
    assert len(fresh_store.pairs(user_id=uid)) == 1
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
        assert fresh_store.db[table].count == 0, table
    assert fresh_store.user_id("t", "bob", create=False) == other
