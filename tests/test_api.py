"""The HTTP API against real server processes (uvicorn on an ephemeral port), with httpx and the official
``openai`` client. Most tests use a server with a scripted generator (fast, deterministic; the embedder is
real); the chat/SDK tests use ``redline serve`` on the packaged SmolLM2."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from stores import count, opened, rows

from redline.store import open_store

from servers import REPO, Server, create_key, error, scripted_server, wait_learned

pytestmark = pytest.mark.integration


ARTICLE = ("The city council approved a new budget on Tuesday that raises spending on public transit by 12 percent "
           "and funds two new bus lines connecting the northern suburbs to the downtown business district.")
SIMILAR = ("On Wednesday the council's transit committee published the schedule for the two new bus lines funded "
           "by the budget, with the first buses running from the northern suburbs in March.")


def _stack(data, **env):
    keys = {t: create_key(data, t, **env) for t in ("acme", "globex", "fuzz")}
    down = data / "generator-down"
    # the learner asks a down generator again every second (30 s by default), so an outage test ends quickly
    server = scripted_server(data, REDLINE_SCRIPTED_DOWN_FILE=str(down), REDLINE_MAX_BODY_BYTES="65536",
                             REDLINE_LEARN_RETRY_SECONDS="1", **env).wait_ready()
    clients = {t: httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {k}"}, timeout=30)
               for t, k in keys.items()}
    yield {"server": server, "keys": keys, "down": down, "database_url": env.get("REDLINE_DATABASE_URL"), **clients}
    for c in clients.values():
        c.close()
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One scripted-generator server (auth on) with keys for three tenants, on SQLite."""
    yield from _stack(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def postgres_stack(tmp_path_factory, postgres_server):
    """The same on a PostgreSQL database (``REDLINE_DATABASE_URL``)."""
    yield from _stack(tmp_path_factory.mktemp("api-pg"), REDLINE_DATABASE_URL=postgres_server.fresh_url())


@pytest.fixture(params=["sqlite", "postgresql"])
def both(request):
    """``stack`` on each back-end in turn: the tests that take it run against SQLite and PostgreSQL."""
    return request.getfixturevalue("stack" if request.param == "sqlite" else "postgres_stack")


# -- basics -----------------------------------------------------------------------------------------


def test_health_ready_docs_and_request_ids(stack):
    url = stack["server"].url
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and health["pid"] == stack["server"].children()["api-0"]
    ready = httpx.get(url + "/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "store": True, "models_loaded": True, "generator": True}
    end = time.monotonic() + 60
    while httpx.get(url + "/ready").json()["learners"] != 1:  # the supervisor's learner says it is alive
        assert time.monotonic() < end
        time.sleep(0.2)
    docs = httpx.get(url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    for path in ("/v1/generate", "/v1/interactions/{interaction_id}/edit", "/v1/interactions/{interaction_id}",
                 "/v1/users", "/v1/users/{user}/preferences",
                 "/v1/users/{user}/preferences/{preference_id}", "/v1/users/{user}/rules/{rule_id}",
                 "/v1/users/{user}/export", "/v1/users/{user}",
                 "/v1/chat/completions", "/v1/models", "/health", "/ready", "/metrics"):
        assert path in paths, path
        for op in paths[path].values():
            assert op.get("description") or op.get("summary"), path  # every route documented
    given = httpx.get(url + "/health", headers={"X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    generated = httpx.get(url + "/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    stack["acme"].get("/v1/users/nobody/preferences", headers={"X-Request-ID": "find-me-in-the-log"})
    time.sleep(0.2)
    assert re.search(r"\[find-me-in-the-log\] GET /v1/users/nobody/preferences 404", stack["server"].log())


def test_auth_missing_invalid_and_revoked_keys(stack):
    url = stack["server"].url
    resp = httpx.post(url + "/v1/generate", json={"user": "alice", "context": ARTICLE})
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert error(resp) == {"message": "missing API key: send the header 'Authorization: Bearer <key>' (create one "
                                      "with `redline keys create --tenant NAME`)",
                           "type": "authentication_error", "code": "missing_api_key"}
    resp = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer rl-not-a-key"})
    assert resp.status_code == 401
    assert error(resp) == {"message": "invalid or revoked API key", "type": "authentication_error",
                           "code": "invalid_api_key"}
    key = create_key(stack["server"].data_dir, "temp")
    assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = subprocess.run([sys.executable, "-m", "redline.cli", "--data-dir", str(stack["server"].data_dir), "--json",
                             "keys", "list", "--tenant", "temp"], cwd=REPO, capture_output=True, text=True,
                            check=True)
    assert key not in listed.stdout and key[:10] in listed.stdout
    key_id = __import__("json").loads(listed.stdout)["keys"][0]["id"]
    subprocess.run([sys.executable, "-m", "redline.cli", "--data-dir", str(stack["server"].data_dir), "keys", "revoke",
                    str(key_id)], cwd=REPO, check=True, capture_output=True)
    assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    with sqlite3.connect(stack["server"].data_dir / "redline.db") as db:  # only hashes are stored
        stored = [r for row in db.execute("SELECT * FROM api_keys") for r in row]
    assert key not in stored


# -- the learning loop ------------------------------------------------------------------------------


def test_generate_edit_preferences_flow(both):
    c = both["acme"]
    first = c.post("/v1/generate", json={"user": "alice", "context": ARTICLE, "task": "summarize"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["text"] and body["preference"] is None and body["neighbours"] == [] and body["model"] == "scripted"
    assert body["candidates"] == [{"text": body["text"], "preference": None, "source": "target", "kind": "greedy",
                                   "score": None, "reward": None, "chosen": True, "raw_text": None,
                                   "applied_rules": [], "drafted_again": None}]
    assert body["applied_rules"] == [] and body["selection"] is None
    iid = body["interaction_id"]
    edited = "Council raises transit spending 12%: two new bus lines link the northern suburbs with downtown."
    resp = c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": edited})
    assert resp.status_code == 202, resp.text
    receipt = resp.json()
    assert receipt["status"] == "accepted" and receipt["created"] and receipt["is_edit"] and receipt["cost"] > 0
    again = c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": edited})
    assert again.status_code == 202 and again.json() == {**receipt, "created": False}
    conflict = c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "something else entirely"})
    assert conflict.status_code == 409
    assert error(conflict) == {"message": f"interaction {iid} already has a different edit",
                               "type": "conflict_error", "code": "conflict"}
    wait_learned(c, "alice", 1)
    prefs = c.get("/v1/users/alice/preferences").json()
    assert prefs["stats"]["edits"] == 1 and prefs["stats"]["preferences"] == 1
    assert prefs["stats"]["mean_cost_first"] == receipt["cost"] == prefs["stats"]["mean_cost_last"]
    item = prefs["items"][0]
    assert item["text"] and item["kind"] == "inferred" and item["interaction_id"] == iid
    assert item["context_snippet"] == ARTICLE and item["edited_text"] == edited
    assert item["draft"] == body["text"] and item["cost"] == receipt["cost"] and item["created_at"]
    shown = c.get(f"/v1/interactions/{iid}").json()  # the learning status the backend can poll
    assert shown["learning"]["status"] == "learned" and shown["learning"]["learned_at"]
    assert shown["learning"]["preference"] == {"id": item["id"], "text": item["text"], "kind": "inferred"}
    assert shown["text"] == body["text"] and shown["edit"]["edited_text"] == edited
    assert shown["edit"]["cost"] == receipt["cost"] and shown["user"] == "alice"
    assert c.get("/v1/interactions/0123abc").status_code == 404
    second = c.post("/v1/generate", json={"user": "alice", "context": SIMILAR}).json()
    assert second["preference"] == item["text"]
    assert [n["interaction_id"] for n in second["neighbours"]] == [iid]


def test_preferences_pagination_patch_and_delete(both):
    c = both["acme"]
    ids = []
    for i in range(3):
        iid = c.post("/v1/generate", json={"user": "bob", "context": f"{ARTICLE} Round {i}."}).json()["interaction_id"]
        ids.append(iid)
        assert c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": f"Short note {i}."}).status_code == 202
    wait_learned(c, "bob", 3)
    page1 = c.get("/v1/users/bob/preferences", params={"limit": 2}).json()
    assert [p["interaction_id"] for p in page1["items"]] == [ids[2], ids[1]] and page1["next_offset"] == 2
    page2 = c.get("/v1/users/bob/preferences", params={"limit": 2, "offset": 2}).json()
    assert [p["interaction_id"] for p in page2["items"]] == [ids[0]] and page2["next_offset"] is None
    pref_ids = [p["id"] for p in page1["items"] + page2["items"]]
    for pid in pref_ids[1:]:
        assert c.delete(f"/v1/users/bob/preferences/{pid}").status_code == 204
    assert c.post("/v1/generate", json={"user": "carol", "context": ARTICLE}).status_code == 200
    stranger = c.patch(f"/v1/users/carol/preferences/{pref_ids[0]}", json={"text": "hijacked"})  # bob's, same tenant
    assert stranger.status_code == 404
    assert error(stranger) == {"message": f"unknown preference id {pref_ids[0]}", "type": "not_found_error",
                               "code": "not_found"}
    patched = c.patch(f"/v1/users/bob/preferences/{pref_ids[0]}", json={"text": "  bullet points only  "})
    assert patched.status_code == 200 and patched.json()["text"] == "bullet points only"
    assert patched.json()["user_edited"] is True
    listed = next(p for p in page1["items"] + page2["items"] if p["id"] == pref_ids[0])
    assert patched.json() == {**listed, "text": "bullet points only", "user_edited": True,
                              "updated_at": patched.json()["updated_at"]}  # as the list shows it
    assert c.post("/v1/generate", json={"user": "bob", "context": ARTICLE}).json()["preference"] == "bullet points only"
    assert c.delete(f"/v1/users/bob/preferences/{pref_ids[0]}").status_code == 204
    assert c.post("/v1/generate", json={"user": "bob", "context": ARTICLE}).json()["preference"] is None
    missing = c.delete(f"/v1/users/bob/preferences/{pref_ids[0]}")
    assert missing.status_code == 404
    assert error(missing) == {"message": f"unknown preference id {pref_ids[0]}", "type": "not_found_error",
                              "code": "not_found"}


def test_export_and_hard_delete_leave_nothing(both):
    c = both["acme"]
    iid = c.post("/v1/generate", json={"user": "dana", "context": ARTICLE}).json()["interaction_id"]
    c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "Transit budget up 12 percent."})
    exported = wait_learned(c, "dana", 1)
    assert exported["user"]["name"] == "dana" and exported["user"]["tenant"] == "acme"
    assert [i["id"] for i in exported["interactions"]] == [iid]
    assert len(exported["preferences"]) == 1 and len(exported["pairs"]) == 1
    iid2 = c.post("/v1/generate", json={"user": "dana", "context": SIMILAR}).json()["interaction_id"]
    c.post(f"/v1/interactions/{iid2}/edit", json={"edited_text": "Buses from March."})  # maybe still queued
    resp = c.delete("/v1/users/dana")
    assert resp.status_code == 200 and resp.json()["removed"]["interactions"] == 2
    assert resp.json()["removed"]["users"] == 1
    time.sleep(0.5)  # a learning job that was running must not resurrect anything
    assert c.get("/v1/users/dana/export").status_code == 404
    assert c.get("/v1/users/dana/preferences").status_code == 404
    store = open_store(both["database_url"], both["server"].data_dir / "redline.db")
    try:
        assert count(store, "users", "name = 'dana'") == 0
        for table in ("interactions", "edits", "preferences", "pairs", "jobs"):
            assert count(store, table, f"{'id' if table == 'interactions' else 'interaction_id'} IN (?, ?)",
                         (iid, iid2)) == 0
    finally:
        store.close()
    assert c.post("/v1/generate", json={"user": "dana", "context": ARTICLE}).json()["neighbours"] == []


def _checkpoints(db_path) -> list[dict]:
    """The reward checkpoints in the store, oldest first: name and metadata (read-only, beside the server)."""
    import json

    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return [{"name": name, **json.loads(meta)} for name, meta in
                db.execute("SELECT name, meta FROM checkpoints WHERE kind = 'reward' ORDER BY id")]


def test_hard_delete_leaves_no_text_or_embedding_of_the_user_in_derived_files(tmp_path, embedder):
    """After DELETE /v1/users/u no file that redline derives under the data dir holds u's text or its embedding, and
    once the retraining the delete queued ran (the learner runs it within seconds), the store holds no reward
    checkpoint trained on u's pairs. (The SQLite files' own bytes are the subject of the secure-delete test; the
    logs here are the test harness's capture of the servers' output.)"""
    import numpy as np

    marker = "Zanzibar quokka vellum 7731"
    context = f"{marker}: the harbour board approved a ferry timetable for the islands."
    edited = f"{marker}. Ferries run hourly."
    vectors = [v.astype(np.float32).tobytes() for v in embedder.encode([context, edited])]
    rewards = tmp_path / "rewards"
    rewards.mkdir(parents=True)
    np.savez(rewards / "embeddings.npz", keys=np.array(["old"]), vectors=np.frombuffer(vectors[1], np.float32)[None])
    (rewards / "ckpt-old").mkdir()
    (rewards / "CURRENT").write_text('{"name": "ckpt-old"}')
    server = scripted_server(tmp_path, REDLINE_AUTH="false", REDLINE_REWARD_RETRAIN_EVERY="1").wait_ready()
    db = tmp_path / "redline.db"
    try:
        # an older redline's files (text embeddings, checkpoint folders a delete could not reach) are gone
        assert not (rewards / "embeddings.npz").exists() and not list(rewards.iterdir())
        c = httpx.Client(base_url=server.url, timeout=30)
        for user, ctx, kept in (("keep", ARTICLE, "Transit up 12 percent."), ("keep", SIMILAR, "Buses from March."),
                                ("gone", context, edited)):
            iid = c.post("/v1/generate", json={"user": user, "context": ctx}).json()["interaction_id"]
            assert c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": kept}).status_code == 202
        wait_learned(c, "gone", 1)
        end = time.monotonic() + 60
        while not _checkpoints(db) or _checkpoints(db)[-1]["pairs"] != 3:
            assert time.monotonic() < end, "the reward was not retrained on the three pairs"
            time.sleep(0.2)

        def derived_files():
            return [f for f in tmp_path.rglob("*") if f.is_file() and not f.name.startswith("redline.db")
                    and not f.name.startswith(("server-", "generator-"))]

        def holding(files):
            return [str(f) for f in files for needle in (marker.encode(), *vectors) if needle in f.read_bytes()]

        assert holding([db, tmp_path / "redline.db-wal"])  # the search does see the user
        assert c.get("/v1/users/gone/preferences").json()["routing"] is not None
        deleted = c.delete("/v1/users/gone")
        assert deleted.status_code == 200 and deleted.json()["reward_retrain_queued"] is True
        assert holding(derived_files()) == []
        end = time.monotonic() + 60
        while _checkpoints(db)[-1]["pairs"] != 2:  # the learner retrains without them
            assert time.monotonic() < end, "the delete's retraining did not run"
            time.sleep(0.2)
        assert len(_checkpoints(db)) == 1  # every checkpoint trained on the deleted pairs is gone
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            assert {r[0] for r in conn.execute("SELECT status FROM jobs WHERE kind = 'retrain'")} == {"done"}
        assert holding(derived_files()) == []
        assert c.get("/v1/users/keep/preferences").json()["routing"]["steps"] == 2
    finally:
        server.stop()


def test_tenants_never_see_each_other(both):
    acme, globex = both["acme"], both["globex"]
    iid = acme.post("/v1/generate", json={"user": "erin", "context": ARTICLE}).json()["interaction_id"]
    acme.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "Acme's private edit."})
    pref_id = wait_learned(acme, "erin", 1)["preferences"][0]["id"]
    not_found = {"type": "not_found_error", "code": "not_found"}
    for resp in (globex.get("/v1/users/erin/preferences"), globex.get("/v1/users/erin/export"),
                 globex.delete("/v1/users/erin"), globex.delete(f"/v1/users/erin/preferences/{pref_id}"),
                 globex.patch(f"/v1/users/erin/preferences/{pref_id}", json={"text": "hijacked"}),
                 globex.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "hijacked"})):
        assert resp.status_code == 404, resp.text
        assert {k: v for k, v in error(resp).items() if k != "message"} == not_found
    # globex's own "erin" is a different person
    own = globex.post("/v1/generate", json={"user": "erin", "context": ARTICLE}).json()
    assert own["neighbours"] == [] and own["preference"] is None
    assert globex.patch(f"/v1/users/erin/preferences/{pref_id}", json={"text": "x"}).status_code == 404
    assert [i["id"] for i in globex.get("/v1/users/erin/export").json()["interactions"]] == [own["interaction_id"]]
    assert acme.get("/v1/users/erin/preferences").json()["items"][0]["text"] != "hijacked"


UTILIZE = ("Budget notes: we utilize the reserve fund this year, and the council will utilize two new bus lines to "
           "reach the northern suburbs.")


def test_edit_rules_are_learned_applied_listed_switched_and_deleted(both):
    c, globex = both["acme"], both["globex"]

    def generate(client, user, context=UTILIZE, **more):  # the scripted generator echoes the context's end
        resp = client.post("/v1/generate", json={"user": user, "context": context, "use_preference": False, **more})
        assert resp.status_code == 200, resp.text
        return resp.json()

    for i in range(2):
        body = generate(c, "rita", f"{UTILIZE} Note {i}.")
        assert "utilize" in body["text"] and body["applied_rules"] == [] and body["preference"] is None
        c.post(f"/v1/interactions/{body['interaction_id']}/edit",
               json={"edited_text": body["text"].replace("utilize", "use")})
    taught = [i["id"] for i in wait_learned(c, "rita", 2)["interactions"]]
    [rule] = [r for r in c.get("/v1/users/rita/preferences").json()["rules"] if r["kind"] == "replace_phrase"]
    assert rule["description"] == "replace 'utilize' with 'use'" and rule["params"] == {"old": "utilize", "new": "use"}
    assert (rule["support"], rule["contradictions"], rule["precision"], rule["active"]) == (2, 0, 1.0, True)
    assert sorted(rule["taught_by"]) == sorted(taught) and rule["enabled"] is None and rule["origin"] == "mined"
    applied = [{"id": rule["id"], "kind": "replace_phrase", "description": "replace 'utilize' with 'use'"}]

    fixed = generate(c, "rita", f"{UTILIZE} Note 2.")
    assert "utilize" not in fixed["text"] and fixed["applied_rules"] == applied
    assert fixed["candidates"][0]["raw_text"].replace("utilize", "use") == fixed["text"]
    opted_out = generate(c, "rita", f"{UTILIZE} Note 3.", rules=False)
    assert "utilize" in opted_out["text"] and opted_out["applied_rules"] == []
    message = "Some background first. " * 20 + UTILIZE  # the learned preference goes after what the echo reads
    chat = c.post("/v1/chat/completions", json={"user": "rita", "messages": [{"role": "user", "content": message}]})
    assert chat.json()["applied_rules"] == applied and chat.headers["x-redline-applied-rules"] == str(rule["id"])
    assert "utilize" not in chat.json()["choices"][0]["message"]["content"]
    # another tenant's rita, and another user of this tenant, get nothing of it
    assert generate(globex, "rita")["applied_rules"] == [] and generate(c, "ron")["applied_rules"] == []

    path = f"/v1/users/rita/rules/{rule['id']}"
    off = c.patch(path, json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["id"] == rule["id"]
    assert generate(c, "rita")["applied_rules"] == []
    mine = c.patch(path, json={"enabled": True, "text": "employ"}).json()
    assert mine["description"] == "replace 'utilize' with 'employ'" and mine["origin"] == "user" and mine["enabled"]
    assert "employ" in generate(c, "rita")["text"]
    assert c.patch(path, json={"enabled": None}).json()["enabled"] is None

    not_found = {"type": "not_found_error", "code": "not_found"}
    for resp, message in ((c.patch("/v1/users/rita/rules/999999", json={"enabled": False}), "unknown rule id 999999"),
                          (c.delete("/v1/users/rita/rules/999999"), "unknown rule id 999999"),
                          (c.patch(f"/v1/users/ron/rules/{rule['id']}", json={"enabled": False}),  # another user's
                           f"unknown rule id {rule['id']}"),
                          (c.delete(f"/v1/users/ron/rules/{rule['id']}"), f"unknown rule id {rule['id']}"),
                          (globex.patch(path, json={"enabled": False}), f"unknown rule id {rule['id']}"),
                          (globex.delete(path), f"unknown rule id {rule['id']}")):  # another tenant's
        assert resp.status_code == 404 and error(resp) == {"message": message, **not_found}, resp.text
    invalid = {"type": "invalid_request_error", "code": "invalid_rule"}
    for body, message in (({"text": ""}, "rule text must not be empty"),
                          ({"text": "   "}, "rule text must not be empty"),
                          ({"text": "x" * 201}, "rule text is longer than 200 characters"),
                          ({}, "nothing to change: give enabled and/or text")):
        resp = c.patch(path, json=body)
        assert resp.status_code == 422 and error(resp) == {"message": message, **invalid}, resp.text
    wrong = c.patch(path, json={"enabled": "yes"})
    assert wrong.status_code == 422 and error(wrong)["code"] == "invalid_request"
    assert c.delete(path).status_code == 204
    assert c.delete(path).status_code == 404
    assert all(r["id"] != rule["id"] for r in c.get("/v1/users/rita/preferences").json()["rules"])


# -- bad input --------------------------------------------------------------------------------------

def _not_json(what: str) -> dict:
    return {"message": f"{what}; send JSON with 'Content-Type: application/json'", "type": "invalid_request_error",
            "code": "unsupported_media_type"}


def _control_char(what: str, code: str, position: int) -> dict:
    return {"message": f"{what} contains the control character {code} at position {position}; only tab, newline, "
                       "carriage return, vertical tab and form feed may appear",
            "type": "invalid_request_error", "code": "invalid_input"}


BAD = [
    ("malformed json", "POST", "/v1/generate", b'{"user": "al', "application/json", 400,
     {"message": "the request body is not valid JSON", "type": "invalid_request_error", "code": "invalid_json"}),
    ("invalid utf-8", "POST", "/v1/generate", b'{"user": "al", "context": "\xff\xfe"}', "application/json", 400,
     {"message": "the request body is not valid UTF-8 (byte 27)", "type": "invalid_request_error",
      "code": "invalid_json"}),
    ("missing field", "POST", "/v1/generate", b'{"user": "al"}', "application/json", 422,
     {"message": "context: Field required", "type": "invalid_request_error", "code": "invalid_request"}),
    ("wrong type", "POST", "/v1/generate", b'{"user": "al", "context": 42}', "application/json", 422,
     {"message": "context: Input should be a valid string", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("unknown field", "POST", "/v1/generate", b'{"user": "al", "context": "x", "colour": 1}', "application/json", 422,
     {"message": "colour: Extra inputs are not permitted", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("empty text", "POST", "/v1/generate", b'{"user": "al", "context": "   "}', "application/json", 400,
     {"message": "context is empty", "type": "invalid_request_error", "code": "invalid_input"}),
    ("odd user id", "POST", "/v1/generate", b'{"user": "al/../x", "context": "hi"}', "application/json", 422,
     {"message": "user: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._@:+\\-]{0,127}$'",
      "type": "invalid_request_error", "code": "invalid_request"}),
    ("odd user id in path", "GET", "/v1/users/%20drop%3B/preferences", None, None, 422,
     {"message": "path.user: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._@:+\\-]{0,127}$'",
      "type": "invalid_request_error", "code": "invalid_request"}),
    ("lone surrogate", "POST", "/v1/generate", b'{"user": "al", "context": "\\ud800"}', "application/json", 422,
     {"message": "context: text must be valid UTF-8 (no lone surrogates)",
      "type": "invalid_request_error", "code": "invalid_request"}),
    ("lone surrogate in chat model", "POST", "/v1/chat/completions",  # issue 16.1: was a 500 after generating
     b'{"user": "bob", "model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "application/json", 422,
     {"message": "model: text must be valid UTF-8 (no lone surrogates)", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("lone surrogate in an ignored field", "POST", "/v1/chat/completions",
     b'{"user": "bob", "messages": [{"role": "user", "content": "hi", "name": "\\udc00x"}]}', "application/json", 422,
     {"message": "messages.0.name: text must be valid UTF-8 (no lone surrogates)", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("string for a boolean", "POST", "/v1/chat/completions",  # issue 16.6: was coerced to true
     b'{"user": "bob", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}', "application/json", 422,
     {"message": "stream: Input should be a valid boolean", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("number for a boolean", "POST", "/v1/chat/completions", b'{"user": "bob", "messages": [{"role": "user", '
     b'"content": "hi"}], "stream": true, "stream_options": {"include_usage": 1}}', "application/json", 422,
     {"message": "stream_options.include_usage: Input should be a valid boolean", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("NUL in a context", "POST", "/v1/generate", b'{"user": "al", "context": "ab\\u0000cd"}', "application/json", 400,
     _control_char("context", "U+0000", 2)),
    ("ESC in a chat message", "POST", "/v1/chat/completions",
     b'{"user": "al", "messages": [{"role": "user", "content": "\\u001b[2Jhi"}]}', "application/json", 400,
     _control_char("messages.0.content", "U+001B", 0)),
    ("backspace in an edit", "POST", "/v1/interactions/0123abc/edit", b'{"edited_text": "kept\\b"}',
     "application/json", 400,
     _control_char("edited_text", "U+0008", 4)),
    ("bell in a rule", "PATCH", "/v1/users/nobody/rules/1", b'{"text": "Best,\\u0007 Sam"}', "application/json", 400,
     _control_char("text", "U+0007", 5)),
    # issue 25: the same rule for every string of a body, the ones the chat route ignores included
    ("NUL and ESC in the chat model", "POST", "/v1/chat/completions",  # was a 200 that echoed them back
     b'{"user": "al", "model": "red\\u0000\\u001b[31mline", "messages": [{"role": "user", "content": "hi"}]}',
     "application/json", 400, _control_char("model", "U+0000", 3)),
    ("NUL in a system message", "POST", "/v1/chat/completions",
     b'{"user": "al", "messages": [{"role": "system", "content": "be\\u0000nice"}, {"role": "user", "content": "hi"}]}',
     "application/json", 400, _control_char("messages.0.content", "U+0000", 2)),
    ("NUL in a message's name", "POST", "/v1/chat/completions",
     b'{"user": "al", "messages": [{"role": "user", "content": "hi", "name": "al\\u0000"}]}', "application/json", 400,
     _control_char("messages.0.name", "U+0000", 2)),
    ("NUL in an unknown field", "POST", "/v1/chat/completions",
     b'{"user": "al", "metadata": {"note": ["x\\u0000"]}, "messages": [{"role": "user", "content": "hi"}]}',
     "application/json", 400, _control_char("metadata.note.0", "U+0000", 1)),
    ("NUL in an unknown field's name", "POST", "/v1/chat/completions",
     b'{"user": "al", "metadata": {"n\\u0000te": 1}, "messages": [{"role": "user", "content": "hi"}]}',
     "application/json", 400, _control_char("a key in metadata", "U+0000", 1)),
    ("a body nested 1,000 levels deep", "POST", "/v1/chat/completions",  # was "not valid UTF-8 JSON"
     b'{"user": "al", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + b"[" * 1000 + b"]" * 1000 + b"}",
     "application/json", 400, {"message": "the request body is nested too deeply: at most 64 levels of arrays and "
                                          "objects", "type": "invalid_request_error", "code": "invalid_json"}),
    ("a body nested 65 levels deep", "POST", "/v1/chat/completions",
     b'{"user": "al", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + b"[" * 64 + b"]" * 64 + b"}",
     "application/json", 400, {"message": "the request body is nested too deeply: at most 64 levels of arrays and "
                                          "objects", "type": "invalid_request_error", "code": "invalid_json"}),
    ("NaN", "POST", "/v1/generate", b'{"user": "al", "context": "x", "temperature": NaN}', "application/json", 400,
     {"message": "the request body is not valid JSON (NaN is not JSON)", "type": "invalid_request_error",
      "code": "invalid_json"}),
    # issue 25: a body that is not JSON is a 415 naming the type expected (was a 422 about "a valid dictionary")
    ("text/plain", "POST", "/v1/generate", b'{"user": "al", "context": "x"}', "text/plain", 415,
     _not_json("the request body is text/plain")),
    ("a form", "POST", "/v1/interactions/0123abc/edit", b"edited_text=kept", "application/x-www-form-urlencoded", 415,
     _not_json("the request body is application/x-www-form-urlencoded")),
    ("XML", "PATCH", "/v1/users/nobody/preferences/1", b"<text>x</text>", "application/xml", 415,
     _not_json("the request body is application/xml")),
    ("no content type", "POST", "/v1/chat/completions", b'{"user": "al", "messages": []}', None, 415,
     {"message": "the request has no Content-Type: send the body as JSON with 'Content-Type: application/json'",
      "type": "invalid_request_error", "code": "unsupported_media_type"}),
    ("a charset other than UTF-8", "POST", "/v1/generate", b'{"user": "al", "context": "x"}',
     "application/json; charset=latin-1", 415,
     {"message": "the request body is declared charset=latin-1; send UTF-8 JSON ('Content-Type: application/json')",
      "type": "invalid_request_error", "code": "unsupported_media_type"}),
    # issue 25: only UTF-8, as README says (UTF-16 and a BOM were accepted)
    ("UTF-16", "POST", "/v1/generate", '{"user": "al", "context": "x"}'.encode("utf-16-le"), "application/json", 400,
     {"message": "the request body is UTF-16 or UTF-32; send UTF-8 JSON", "type": "invalid_request_error",
      "code": "invalid_json"}),
    ("UTF-16 with its BOM", "POST", "/v1/generate", '{"user": "al", "context": "x"}'.encode("utf-16"),
     "application/json", 400,
     {"message": "the request body starts with a UTF-16 byte order mark; send UTF-8 JSON without one",
      "type": "invalid_request_error", "code": "invalid_json"}),
    ("a UTF-8 BOM", "POST", "/v1/generate", b'\xef\xbb\xbf{"user": "al", "context": "x"}', "application/json", 400,
     {"message": "the request body starts with a UTF-8 byte order mark; send UTF-8 JSON without one",
      "type": "invalid_request_error", "code": "invalid_json"}),
    ("oversized body", "POST", "/v1/generate", b'{"user": "al", "context": "' + b"x" * 70_000 + b'"}',
     "application/json", 413,
     {"message": "the request body is larger than 65536 bytes", "type": "invalid_request_error",
      "code": "request_too_large"}),
    ("unknown interaction", "POST", "/v1/interactions/0123abc/edit", b'{"edited_text": "hi"}', "application/json", 404,
     {"message": "unknown interaction id '0123abc'", "type": "not_found_error", "code": "not_found"}),
    ("empty edit", "POST", "/v1/interactions/0123abc/edit", b'{"edited_text": ""}', "application/json", 400,
     {"message": "edited text is empty", "type": "invalid_request_error", "code": "invalid_input"}),
    ("unknown user", "GET", "/v1/users/nobody/export", None, None, 404,
     {"message": "unknown user 'nobody'", "type": "not_found_error", "code": "not_found"}),
    ("unknown route", "GET", "/v2/nothing", None, None, 404,
     {"message": "no route for GET /v2/nothing", "type": "not_found_error", "code": "not_found"}),
    ("wrong method", "GET", "/v1/generate", None, None, 405,
     {"message": "GET is not allowed on /v1/generate; allowed: OPTIONS, POST", "type": "invalid_request_error",
      "code": "method_not_allowed"}),
    ("unknown task", "POST", "/v1/generate", b'{"user": "al", "context": "x", "task": "poem"}', "application/json",
     422, {"message": "task: Input should be 'summarize', 'email', 'revise' or 'chat'",
           "type": "invalid_request_error", "code": "invalid_request"}),
    ("max_tokens over limit", "POST", "/v1/generate", b'{"user": "al", "context": "x", "max_tokens": 5000}',
     "application/json", 400,
     {"message": "max_tokens is 5000; this server allows at most 2048", "type": "invalid_request_error",
      "code": "invalid_input"}),
    ("chat max_tokens over limit beside a max_completion_tokens", "POST", "/v1/chat/completions",  # was a 200
     b'{"user": "al", "max_completion_tokens": 10, "max_tokens": 5000, '
     b'"messages": [{"role": "user", "content": "hi"}]}',
     "application/json", 400,
     {"message": "max_tokens is 5000; this server allows at most 2048", "type": "invalid_request_error",
      "code": "invalid_input"}),
    ("a boolean for an integer", "POST", "/v1/chat/completions",  # was taken as 0
     b'{"user": "al", "seed": false, "messages": [{"role": "user", "content": "hi"}]}', "application/json", 422,
     {"message": "seed: Input should be a valid integer", "type": "invalid_request_error", "code": "invalid_request"}),
    ("too many candidates", "POST", "/v1/generate", b'{"user": "al", "context": "x", "strategy": "best_of_n", '
     b'"n": 17}', "application/json", 422,
     {"message": "n: Input should be less than or equal to 16", "type": "invalid_request_error",
      "code": "invalid_request"}),
    ("unknown strategy", "POST", "/v1/generate", b'{"user": "al", "context": "x", "strategy": "best"}',
     "application/json", 422, {"message": "strategy: Input should be 'greedy', 'best_of_n' or 'rps'",
                               "type": "invalid_request_error", "code": "invalid_request"}),
    ("chat without user", "POST", "/v1/chat/completions", b'{"model": "m", "messages": [{"role": "user", '
     b'"content": "hi"}]}', "application/json", 400,
     {"message": "user is required: set `user` to the id of the person the reply is for",
      "type": "invalid_request_error", "code": "missing_user"}),
    ("chat ending with assistant", "POST", "/v1/chat/completions", b'{"model": "m", "user": "al", "messages": '
     b'[{"role": "assistant", "content": "hi"}]}', "application/json", 400,
     {"message": "the last message must be a non-empty user message", "type": "invalid_request_error",
      "code": "invalid_input"}),
]


@pytest.mark.parametrize("name,method,path,content,ctype,status,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_with_an_openai_error_body(stack, name, method, path, content, ctype, status, expected):
    headers = {"content-type": ctype} if ctype else {}
    resp = stack["acme"].request(method, path, content=content, headers=headers)
    assert resp.status_code == status, resp.text
    body = error(resp)
    if expected is not None:
        assert body == expected
    else:
        assert body["type"] == "invalid_request_error"


def test_bad_input_changes_nothing_and_echoes_nothing(stack):
    """Issue 25: a chat request whose model holds NUL and ESC was a 200 that echoed them and stored the interaction;
    now nothing is generated or stored for the user, and the answer carries no control character."""
    resp = stack["acme"].post("/v1/chat/completions", json={
        "user": "echo-25", "model": "red\u0000\u001b[31mline", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and "\x1b" not in resp.text and "\\u001b" not in resp.text, resp.text
    assert stack["acme"].get("/v1/users/echo-25/export").status_code == 404


def test_what_the_schema_takes_the_server_takes(stack):
    """Issue 25: JSON integers written with a zero fraction (11.0 is an integer to JSON Schema) are integers; a
    body nested as deep as allowed is read; tab, newline and friends pass in every field."""
    c = stack["acme"]
    ok = c.post("/v1/generate", json={"user": "ints-25", "context": "Tabs\tand\nnewlines.", "strategy": "best_of_n",
                                      "n": 2.0, "max_tokens": 16.0, "seed": 7.0})
    assert ok.status_code == 200 and ok.json()["strategy"] == "best_of_n", ok.text
    assert c.post("/v1/generate", json={"user": "ints-25", "context": "x", "n": 2.5}).status_code == 422
    deep = "[" * 63 + "]" * 63  # the body object and 63 arrays: 64 levels
    chat = c.post("/v1/chat/completions", content='{"user": "ints-25", "model": "m\\tn", "metadata": ' + deep +
                  ', "messages": [{"role": "user", "content": "hi", "name": "Ann\\r\\n"}]}',
                  headers={"content-type": "application/json; charset=utf-8"})
    assert chat.status_code == 200 and chat.json()["model"] == "m\tn", chat.text


def test_the_schema_states_what_the_server_enforces(stack):
    """Issue 25: what the server refuses is in /openapi.json: texts need a character that is not whitespace and no
    control character but tab, LF, VT, FF, CR, up to this server's REDLINE_MAX_TEXT_CHARS; every string of a body
    the same character rule; max_tokens up to REDLINE_MAX_REQUEST_TOKENS; `user` required in a chat; a rule patch
    changes something; every route with a body documents its 415."""
    import re as regex

    spec = httpx.get(stack["server"].url + "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    texts = [schemas["GenerateRequest"]["properties"]["context"], schemas["EditRequest"]["properties"]["edited_text"],
             schemas["PreferencePatch"]["properties"]["text"]]
    for text in texts:
        assert (text["minLength"], text["maxLength"]) == (1, 20000), text
        pattern = regex.compile(text["pattern"])
        assert [bool(pattern.search(t)) for t in ("a", " \t a\n", "", " \n\u3000", "a\x00", "\x1b[2J", "é\x85")] == [
            True, True, False, False, False, False, True]
    generate, chat = schemas["GenerateRequest"]["properties"], schemas["ChatRequest"]
    assert generate["max_tokens"]["anyOf"][0]["maximum"] == 2048
    assert generate["seed"]["anyOf"][0]["maximum"] == 2**53 - 1  # exact: every JSON reader holds it
    assert "user" in chat["required"] and chat["properties"]["user"]["type"] == "string"
    assert regex.compile(chat["properties"]["model"]["pattern"]).search("red\x00line") is None
    assert chat["additionalProperties"] == {"$ref": "#/components/schemas/PlainJson"}
    assert {"required": ["enabled"]} in schemas["RulePatch"]["anyOf"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert ("415" in operation["responses"]) == ("requestBody" in operation), (method, path)


def test_options_and_405_name_every_method_of_the_path(stack):
    """Issue 25: OPTIONS on a preference listed only PATCH in Allow (the first route of the path); now every method
    a route serves at the path, as a 204 to OPTIONS and in the Allow of a 405."""
    url = stack["server"].url
    for path in ("/v1/users/al/preferences/1", "/v1/users/al/rules/1"):
        options = httpx.options(url + path)
        assert (options.status_code, options.headers["allow"]) == (204, "DELETE, OPTIONS, PATCH")
        put = stack["acme"].put(path, json={})
        assert (put.status_code, put.headers["allow"]) == (405, "DELETE, OPTIONS, PATCH")
        assert error(put)["message"] == f"PUT is not allowed on {path}; allowed: DELETE, OPTIONS, PATCH"
    assert httpx.options(url + "/v1/users/al").headers["allow"] == "DELETE, OPTIONS"
    assert httpx.options(url + "/v1/nothing").status_code == 404


# -- robustness -------------------------------------------------------------------------------------


def test_parallel_users_lose_nothing_and_duplicate_nothing(both):
    c = both["acme"]
    users = [f"par{i}" for i in range(12)]

    def one_user(user: str) -> list[str]:
        ids = []
        for r in range(3):
            resp = c.post("/v1/generate", json={"user": user, "context": f"{ARTICLE} ({user} round {r})"})
            assert resp.status_code == 200, resp.text
            iid = resp.json()["interaction_id"]
            text = f"{user} kept version {r}."
            with ThreadPoolExecutor(3) as pool:  # the same edit three times at once: accepted once
                results = list(pool.map(lambda _: c.post(f"/v1/interactions/{iid}/edit",
                                                         json={"edited_text": text}), range(3)))
            assert all(x.status_code == 202 for x in results)
            assert sum(x.json()["created"] for x in results) == 1
            ids.append(iid)
        return ids

    with ThreadPoolExecutor(8) as pool:
        all_ids = dict(zip(users, pool.map(one_user, users)))
    for user, ids in all_ids.items():
        data = wait_learned(c, user, 3)
        assert sorted(i["id"] for i in data["interactions"]) == sorted(ids)
        assert sorted(e["interaction_id"] for e in data["edits"]) == sorted(ids)
        assert sorted(p["interaction_id"] for p in data["preferences"]) == sorted(ids)  # one each, no duplicates
        assert sorted(p["interaction_id"] for p in data["pairs"]) == sorted(ids)


def test_generator_outage_is_503_but_edits_are_accepted(both):
    c = both["acme"]
    iid = c.post("/v1/generate", json={"user": "gina", "context": ARTICLE}).json()["interaction_id"]
    both["down"].touch()
    try:
        for resp in (c.post("/v1/generate", json={"user": "gina", "context": ARTICLE}),
                     c.post("/v1/chat/completions", json={"model": "redline", "user": "gina",
                                                          "messages": [{"role": "user", "content": "hi"}]})):
            assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
            body = error(resp)
            assert (body["type"], body["code"]) == ("service_unavailable_error", "generator_unavailable")
            assert body["message"].startswith("generator at http://127.0.0.1:") and \
                "scripted generator is down" in body["message"]
        accepted = c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "Edited while the model is down."})
        assert accepted.status_code == 202
        time.sleep(1.0)
        assert not [e for e in c.get("/v1/users/gina/export").json()["edits"] if e["learned_at"]]
    finally:
        both["down"].unlink()
    wait_learned(c, "gina", 1, timeout=20)  # retried after the outage


def server_sent(resp: httpx.Response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a text/event-stream body."""
    events = []
    for block in resp.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_generate_streams_start_deltas_done(stack):
    c = stack["acme"]
    resp = c.post("/v1/generate", json={"user": "sia", "context": ARTICLE, "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = server_sent(resp)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    start, done = events[0][1], events[-1][1]
    assert start["interaction_id"] == done["interaction_id"] and start["streams"] is True
    assert start["rules_may_rewrite"] is False and start["preference"] is None
    assert "".join(data["text"] for kind, data in events if kind == "delta") == done["text"]
    assert c.get(f"/v1/interactions/{done['interaction_id']}").json()["text"] == done["text"]
    bad = c.post("/v1/generate", json={"user": "sia", "context": " ", "stream": True})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/json"
    assert c.post("/v1/generate", json={"user": "sia", "context": ARTICLE, "stream": "yes"}).status_code == 422


def test_a_generator_failure_after_the_start_ends_the_stream_and_stores_nothing(stack):
    c = stack["acme"]
    stack["down"].touch()
    try:
        resp = c.post("/v1/generate", json={"user": "stu", "context": ARTICLE, "stream": True})
    finally:
        stack["down"].unlink()
    events = server_sent(resp)
    assert [kind for kind, _ in events] == ["start", "error"]
    error = events[1][1]["error"]
    assert (error["type"], error["code"]) == ("service_unavailable_error", "generator_unavailable")
    assert "rejected the request (503)" in error["message"] and "scripted generator is down" in error["message"]
    assert c.get(f"/v1/interactions/{events[0][1]['interaction_id']}").status_code == 404


def test_metrics_expose_latency_queue_edits_and_tokens(stack):
    text = httpx.get(stack["server"].url + "/metrics").text
    assert re.search(r'redline_http_request_duration_seconds_count\{method="POST",route="/v1/generate",'
                     r'status="200"\} [1-9]', text)
    assert 'route="/v1/interactions/{interaction_id}/edit"' in text
    for name in ("redline_generation_seconds_count", "redline_generate_stage_seconds_count{stage=\"embed\"}",
                 "redline_learning_seconds_count{outcome=\"learned\"}", "redline_learning_queue_depth",
                 "redline_edits_total{outcome=\"accepted\"}", "redline_edits_total{outcome=\"duplicate\"}",
                 "redline_tokens_total{kind=\"completion\",source=\"generate\"}"):
        assert name in text, name


# -- fuzz -------------------------------------------------------------------------------------------

FUZZED = [("POST", "/v1/generate"), ("POST", "/v1/interactions/{interaction_id}/edit"),
          ("GET", "/v1/interactions/{interaction_id}"), ("GET", "/v1/users"),
          ("GET", "/v1/users/{user}/preferences"), ("PATCH", "/v1/users/{user}/preferences/{preference_id}"),
          ("DELETE", "/v1/users/{user}/preferences/{preference_id}"), ("PATCH", "/v1/users/{user}/rules/{rule_id}"),
          ("DELETE", "/v1/users/{user}/rules/{rule_id}"), ("GET", "/v1/users/{user}/export"),
          ("DELETE", "/v1/users/{user}"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models")]


@pytest.mark.parametrize("method,path", FUZZED, ids=[f"{m} {p}" for m, p in FUZZED])
def test_fuzz_openapi_conforms(stack, method, path):
    """schemathesis draws requests (valid and invalid) from the OpenAPI schema and runs all its checks on each
    answer: no 5xx, every status, header and body as the schema says, invalid requests refused and valid ones
    accepted (issue 25: empty texts were a 400 the schema did not state, JSON integers such as 11.0 a 422). The two
    refusals the schema cannot state are let through by name (``doubles.conformance``)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    from doubles import conformance

    url = stack["server"].url
    operation = schemathesis.openapi.from_url(url + "/openapi.json")[path][method]
    headers = {"Authorization": f"Bearer {stack['keys']['fuzz']}"}  # its own tenant: deletes touch nothing else

    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    strategy = operation.as_strategy(modes[0]) | operation.as_strategy(modes[1])  # valid and invalid requests

    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        resp = case.call_and_validate(base_url=url, headers=headers, timeout=30, excluded_checks=conformance.EXCLUDED,
                                      additional_checks=conformance.ADDED)
        assert resp.headers.get("x-request-id")
        if resp.status_code >= 400:
            assert set(resp.json()["error"]) == {"message", "type", "code"}, resp.text

    check()


# -- crash recovery ---------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill9_then_restart_learns_every_accepted_edit_exactly_once(tmp_path, database_env):
    """kill -9 of ``redline serve`` itself: its children stop with it (the kernel tells them), and a restart learns
    every accepted edit once, on either back-end. (Killing a learner or an API process alone:
    tests/test_processes.py.)"""
    data = tmp_path / "crash"
    server = scripted_server(data, REDLINE_AUTH="false", REDLINE_SCRIPTED_DELAY="inference=0.3",
                             **database_env).wait_ready()
    children = server.children()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            ids = [c.post("/v1/generate", json={"user": f"u{i % 3}", "context": f"{ARTICLE} #{i}"}).json()
                   ["interaction_id"] for i in range(8)]
            for i, iid in enumerate(ids):
                assert c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": f"kept {i}"}).status_code == 202
    finally:
        server.kill9()
    end = time.monotonic() + 30
    while any(_alive(pid) for pid in children.values()):
        assert time.monotonic() < end, "the supervisor's children outlived it"
        time.sleep(0.2)
    server.stop()  # its generator server
    with opened(data, database_env) as store:
        assert count(store, "edits") == 8  # every 202 is on disk
        assert count(store, "edits", "learned_at IS NULL") > 0, "the crash came too late to test recovery"
    restarted = scripted_server(data, REDLINE_AUTH="false", **database_env)  # learning needs no embedder
    try:
        with opened(data, database_env) as store:
            end = time.monotonic() + 60
            while count(store, "jobs", "status != 'done'") and time.monotonic() < end:
                time.sleep(0.2)
            assert count(store, "edits", "learned_at IS NULL") == 0
            per_interaction = {r["interaction_id"]: r["n"] for r in rows(
                store, "SELECT interaction_id, COUNT(*) AS n FROM preferences GROUP BY interaction_id")}
            pairs = {r["interaction_id"]: r["n"] for r in rows(
                store, "SELECT interaction_id, COUNT(*) AS n FROM pairs GROUP BY interaction_id")}
            assert rows(store, "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") == [{"status": "done", "n": 8}]
        assert per_interaction == {iid: 1 for iid in ids}
        assert pairs == {iid: 1 for iid in ids}
    finally:
        restarted.stop()


# -- OpenAI compatibility on the real model ---------------------------------------------------------


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    """`redline serve` on the packaged SmolLM2, auth on."""
    data = tmp_path_factory.mktemp("llm")
    key = create_key(data, "writers")
    server = Server(["-m", "redline.cli", "serve", "--port", "0"], data, REDLINE_GENERATOR_MODEL="smollm2",
                    REDLINE_MAX_TOKENS="24", REDLINE_TEMPERATURE="0").wait_ready()
    yield server, key
    server.stop()


def test_openai_sdk_chat_completion_personalizes_and_learns(llm):
    openai = pytest.importorskip("openai")
    server, key = llm
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key)
    assert [m.id for m in client.models.list()] == ["redline"]
    messages = [{"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Write a two-line note inviting the team to Friday's demo."}]
    raw = client.chat.completions.with_raw_response.create(model="redline", messages=messages, user="sam")
    completion = raw.parse()
    iid = raw.headers["x-redline-interaction-id"]
    assert completion.model_extra["interaction_id"] == iid and completion.id == f"chatcmpl-{iid}"
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].message.content.strip()
    assert completion.choices[0].finish_reason == "stop" and completion.usage.completion_tokens > 0
    edited = "Demo on Friday at 3pm, all welcome."
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        assert c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": edited}).status_code == 202
        data = wait_learned(c, "sam", 1, timeout=90)
        assert data["preferences"][0]["text"] and data["interactions"][0]["task"] == "chat"
        follow = [*messages, {"role": "assistant", "content": edited},
                  {"role": "user", "content": "Now a two-line note inviting the team to Monday's demo."}]
        second = client.chat.completions.create(model="redline", messages=follow, user="sam")
        stored = c.get("/v1/users/sam/export").json()["interactions"][-1]
        learned = data["preferences"][0]["text"]
        assert [n["preference"] for n in stored["neighbours"]] == [learned]
        # SmolLM2's draft for the preference can hold nothing of the request (on some CPUs): then it is written
        # again without it, and the response says no preference was used
        used = None if stored["candidates"][0]["drafted_again"] else learned
        assert second.model_extra["preference"] == used
        assert {"role": "assistant", "content": edited} in stored["prompt"]  # the history reached the generator


def test_openai_sdk_streaming(llm):
    openai = pytest.importorskip("openai")
    server, key = llm
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key)
    stream = client.chat.completions.create(model="redline", user="tess", stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Say hello to the team."}])
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip()
    ids = {ch.model_extra["interaction_id"] for ch in chunks}
    assert len(ids) == 1
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        exported = c.get("/v1/users/tess/export").json()
    assert exported["interactions"][0]["id"] == ids.pop() and exported["interactions"][0]["draft"] == text


def test_generate_streams_the_real_model_as_it_decodes(llm):
    server, key = llm
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        resp = c.post("/v1/generate", json={"user": "vic", "context": ARTICLE, "max_tokens": 16, "stream": True})
    events = server_sent(resp)
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    assert len(deltas) > 3  # token by token, not the whole text at the end
    assert "".join(deltas) == events[-1][1]["text"] and events[-1][0] == "done"


def test_generate_on_the_real_model(llm):
    server, key = llm
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        resp = c.post("/v1/generate", json={"user": "uma", "context": ARTICLE, "max_tokens": 16})
        assert resp.status_code == 200 and resp.json()["text"].strip()
        assert resp.json()["usage"]["completion_tokens"] <= 16
        metrics = c.get("/metrics").text
    assert 'redline_generate_stage_seconds_count{stage="generate"}' in metrics
