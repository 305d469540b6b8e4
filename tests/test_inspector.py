"""What the inspector pages show, below the HTTP layer (fast: hash embedder, scripted generator): the tenant's
users with their edit costs, a user's edit history, the charts' geometry, and the sessions with their signing
secret, kept in the store."""

from __future__ import annotations

import sqlite3

import pytest

from redline.agent import UnknownUser
from redline.api.charts import cost_line, routing_bars

from doubles import ScriptedGenerator

DRAFT = "The council approved the budget on Tuesday after a long debate about transit and parks."


@pytest.fixture
def agent(make_agent):
    # rules off: the same fix made twice would be made by a rule, and these tests count the users' own costs
    return make_agent(ScriptedGenerator(lambda prompt, i: DRAFT), k=1, rules=False)


def edit(agent, user: str, words_changed: int, *, tenant: str = "default") -> None:
    """One round for ``user`` whose kept text changes the first ``words_changed`` words of the draft."""
    result = agent.generate(user, f"context for {user}: {DRAFT}", tenant=tenant)
    words = DRAFT.split()
    kept = " ".join(["changed"] * words_changed + words[words_changed:])
    agent.learn(result.interaction_id, kept, tenant=tenant)


def test_users_summarise_edits_like_the_preferences_stats(agent):
    for cost in (6, 5, 4, 2, 1):
        edit(agent, "alice", cost)
    edit(agent, "bob", 3)
    data = agent.users(window=2)
    assert [u["user"] for u in data["users"]] == ["bob", "alice"]  # most recently active first
    assert data["total"] == 2 and data["window"] == 2
    alice = data["users"][1]
    assert (alice["edits"], alice["mean_cost_first"], alice["mean_cost_last"]) == (5, 5.5, 1.5)
    stats = agent.preferences("alice", window=2)["stats"]
    assert (stats["edits"], stats["mean_cost_first"], stats["mean_cost_last"]) == (5, 5.5, 1.5)
    assert alice["preferences"] == stats["preferences"] > 0
    assert alice["last_activity"] >= alice["created_at"]
    edit(agent, "alice", 1)
    assert [u["user"] for u in agent.users()["users"]] == ["alice", "bob"]
    assert [u["user"] for u in agent.users(limit=1, offset=1)["users"]] == ["bob"]


def test_a_user_without_edits_is_listed_with_no_means(agent):
    agent.generate("carol", DRAFT)
    (carol,) = agent.users()["users"]
    assert (carol["edits"], carol["preferences"], carol["mean_cost_first"], carol["mean_cost_last"]) == \
        (0, 0, None, None)


def test_users_and_edit_history_stay_inside_the_tenant(agent):
    edit(agent, "alice", 2, tenant="acme")
    edit(agent, "alice", 4, tenant="globex")
    assert agent.users(tenant="initech")["users"] == []
    assert [u["mean_cost_first"] for u in agent.users(tenant="acme")["users"]] == [2]
    assert [h["cost"] for h in agent.edit_history("alice", tenant="globex")] == [4]
    with pytest.raises(UnknownUser):
        agent.edit_history("alice", tenant="initech")


def test_edit_history_is_oldest_first_with_costs(make_agent):
    agent = make_agent(ScriptedGenerator(lambda prompt, i: DRAFT), k=1, delta=1, rules=False)
    for cost in (3, 1, 2):
        edit(agent, "alice", cost)
    history = agent.edit_history("alice")
    assert [(h["cost"], h["is_edit"]) for h in history] == [(3, True), (1, False), (2, True)]
    assert [h["created_at"] for h in history] == sorted(h["created_at"] for h in history)


def test_cost_line_draws_each_edit_and_averages_long_histories():
    line = cost_line([{"cost": c} for c in (10, 5, 0)], width=240, height=120)
    assert [p["title"] for p in line["points"]] == ["edit 1: cost 10", "edit 2: cost 5", "edit 3: cost 0"]
    xs, ys = [p["x"] for p in line["points"]], [p["y"] for p in line["points"]]
    assert xs == sorted(xs) and xs[0] == line["left"] and xs[-1] == line["right"]
    assert ys[0] == line["top"] and ys[-1] == line["bottom"] and ys[1] == (ys[0] + ys[2]) / 2
    long = cost_line([{"cost": i % 10} for i in range(1000)], max_points=100)
    assert long["per_point"] == 10 and len(long["points"]) == 100 and long["edits"] == 1000
    assert long["points"][0]["title"] == "edits 1-10: cost 4.5"
    assert cost_line([]) is None
    assert len(cost_line([{"cost": 0}])["points"]) == 1  # one edit, cost 0: still drawn
    assert [t["label"] for t in cost_line([{"cost": 7}, {"cost": 3}])["y_ticks"]] == ["0", "5", "10"]


def test_routing_bars_are_as_long_as_the_weights():
    bars = routing_bars({"weights": [0.1, 0.6, 0.3], "top_head": 1, "steps": 4, "entropy": 0.8}, width=300,
                        label=60, value=40)
    assert [b["width"] for b in bars["bars"]] == [20.0, 120.0, 60.0]
    assert [b["top"] for b in bars["bars"]] == [False, True, False]
    assert [b["value"] for b in bars["bars"]] == ["0.10", "0.60", "0.30"]
    even = routing_bars({"weights": [0.2501, 0.25, 0.2499, 0.25], "top_head": 0, "steps": 1, "entropy": 1.0})
    assert not any(b["top"] for b in even["bars"])  # no head leads
    assert routing_bars(None) is None


def test_the_session_secret_is_one_per_store_whichever_process_asks(make_agent, tmp_path):
    """Issue 25: the secret that signs session cookies lives in the store (it was a file per data directory), so
    every API process on the store, on any host, accepts the others' cookies."""
    first = make_agent(ScriptedGenerator(), data_dir=tmp_path / "a")
    second = make_agent(ScriptedGenerator(), data_dir=tmp_path / "a")  # another process on the same store
    other = make_agent(ScriptedGenerator(), data_dir=tmp_path / "b")
    secret = first.keys.session_secret()
    assert len(secret) >= 48 and second.keys.session_secret() == secret == first.keys.session_secret()
    assert other.keys.session_secret() != secret


def test_a_session_lives_on_the_server_until_logout_expiry_or_revocation(agent):
    """Issue 25: a session is a row in the store (the hash of its id), so ending it ends it for every copy of the
    cookie; a revoked key ends all its sessions; an expired one opens nothing."""
    key, row = agent.keys.create("acme")
    assert agent.keys.authenticate(key) == {"id": row["id"], "tenant": "acme"}
    assert agent.keys.authenticate("rl-not-a-key") is None
    first, second = (agent.keys.start_session(row["id"], "acme", 3600) for _ in range(2))
    assert first != second and agent.keys.session_tenant(first) == agent.keys.session_tenant(second) == "acme"
    with sqlite3.connect(agent.store.path) as db:
        stored = [r[0] for r in db.execute("SELECT id_hash FROM ui_sessions")]
    assert len(stored) == 2 and first not in stored and second not in stored  # only hashes
    agent.keys.end_session(first)
    assert agent.keys.session_tenant(first) is None and agent.keys.session_tenant(second) == "acme"
    agent.keys.end_session(first)  # twice: nothing to end
    expired = agent.keys.start_session(row["id"], "acme", -1)
    assert agent.keys.session_tenant(expired) is None
    agent.keys.revoke(row["id"])
    assert agent.keys.session_tenant(second) is None and agent.keys.authenticate(key) is None
    with sqlite3.connect(agent.store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM ui_sessions").fetchone()[0] == 0
    assert agent.keys.session_tenant("no-such-session") is None


def test_the_rules_section_appears_with_rules_and_toggles_them():
    from redline.api.routes.ui import templates

    data = {"user": "alice", "items": [], "offset": 0, "limit": 20, "next_offset": None, "routing": None,
            "stats": {"edits": 0, "preferences": 0, "mean_cost_first": None, "mean_cost_last": None, "window": 10}}
    page = templates.get_template("user.html")
    context = {"auth": True, "tenant": "acme", "csrf_token": "t", "data": data, "routing": None, "costs": None}
    assert 'id="rules"' not in page.render(**context, rules=None)  # before the API has rules: no section
    rules = [{"id": 7, "kind": "replace_phrase", "description": "replace 'utilize' with 'use'", "text": "x",
              "support": 3, "contradictions": 0, "precision": 1.0, "active": True, "enabled": None, "origin": "mined"},
             {"id": 8, "kind": "delete_phrase", "description": "delete '<script>'", "text": "y", "support": 2,
              "contradictions": 1, "precision": 0.67, "active": False, "enabled": False, "origin": "user"}]
    html = page.render(**context, rules=rules)
    assert '<input type="checkbox" class="rule-toggle" data-url="/v1/users/alice/rules/7" ' \
           'aria-label="rule 7 on" checked>' in html
    assert 'data-url="/v1/users/alice/rules/8" aria-label="rule 8 on">' in html  # off
    assert "delete &#39;&lt;script&gt;&#39; <span class=\"badge\">off by hand</span>" in html
    assert "<td class=\"num\">0.67</td>" in html
