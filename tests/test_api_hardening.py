"""Issue 16 against real server processes (scripted generator, real embedder): input that no field may carry
(1), log lines a client cannot forge (2), deleted text gone from every file of the data dir, also after a
SIGTERM (4, and 3 where it depends on the reward cache), and logs that carry lengths, not texts (6)."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from servers import error, files_holding, raw_request, scripted_server, wait_learned

pytestmark = pytest.mark.integration

SURROGATE_MESSAGE = "text must be valid UTF-8 (no lone surrogates)"
ARTICLE = ("The city council approved a new budget on Tuesday that raises spending on public transit by 12 percent "
           "and funds two new bus lines connecting the northern suburbs to the downtown business district.")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One scripted-generator server without auth; the generator answers what the client does not expect (a body
    without choices) while ``broken`` exists."""
    data = tmp_path_factory.mktemp("hardening")
    broken = data / "generator-broken"
    srv = scripted_server(data, REDLINE_AUTH="false", REDLINE_SCRIPTED_BROKEN_FILE=str(broken)).wait_ready()
    srv.broken = broken
    yield srv
    srv.stop()


# -- 1: lone surrogates in every string field -------------------------------------------------------

SLOT = "@@string-slot@@"


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _minimal(spec: dict, schema: dict):
    """A value of ``schema`` with only its required parts (enough to reach a string nested in it)."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        return _minimal(spec, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: _minimal(spec, schema["properties"][name]) for name in schema.get("required", ())}
    return {"string": "text", "array": [], "integer": 1, "number": 1.0, "boolean": False}.get(kind)


def string_slots(spec: dict, schema: dict, base):
    """``(where, body)`` for every place a string can stand in a value of ``schema``: ``body`` is ``base`` (a
    valid value) with ``SLOT`` there, through every union branch and array; an unknown field too wherever the
    schema allows one. ``strict`` says the string is free text (no enum or pattern decides first)."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema and "properties" not in schema:  # an object's own anyOf only constrains its properties
        for branch in schema["anyOf"]:
            yield from string_slots(spec, branch, base)
        return
    kind = schema.get("type")
    if kind == "string":
        yield "", SLOT, "enum" not in schema and "pattern" not in schema
    elif kind == "array":
        items = base if isinstance(base, list) else []
        for where, item, free in string_slots(spec, schema["items"], items[0] if items else None):
            yield f"[0]{where}", [item, *items[1:]], free
    elif kind == "object":
        obj = base if isinstance(base, dict) else _minimal(spec, schema)
        for name, sub in schema.get("properties", {}).items():
            for where, value, free in string_slots(spec, sub, obj.get(name)):
                yield f".{name}{where}", {**obj, name: value}, free
        if schema.get("additionalProperties", True) is not False:
            yield ".an_unknown_field", {**obj, "an_unknown_field": {"nested": [SLOT]}}, True


@pytest.fixture(scope="module")
def targets(server):
    """Each route that takes a body: a valid body, its URL, and a check that the request changed nothing."""
    c = httpx.Client(base_url=server.url, timeout=30)
    owner = c.post("/v1/generate", json={"user": "owner", "context": ARTICLE}).json()
    kept = owner["text"].removeprefix("Draft: ") + "\n\nBest, Sam"  # teaches a rule: end with that line
    c.post(f"/v1/interactions/{owner['interaction_id']}/edit", json={"edited_text": kept})
    preference = wait_learned(c, "owner", 1)["preferences"][0]
    rules = c.get("/v1/users/owner/preferences").json()["rules"]
    assert [r["text"] for r in rules] == ["Best, Sam"], rules
    unedited = c.post("/v1/generate", json={"user": "owner", "context": ARTICLE}).json()["interaction_id"]

    def no_user(name):
        return lambda: c.get(f"/v1/users/{name}/export").status_code == 404

    yield {
        ("post", "/v1/generate"): ("/v1/generate", {"user": "fuzz-gen", "context": ARTICLE}, no_user("fuzz-gen")),
        ("post", "/v1/chat/completions"): (
            "/v1/chat/completions",
            {"user": "fuzz-chat", "model": "redline", "messages": [{"role": "user", "content": "hi"}]},
            no_user("fuzz-chat")),
        ("post", "/v1/interactions/{interaction_id}/edit"): (
            f"/v1/interactions/{unedited}/edit", {"edited_text": "kept"},
            lambda: c.get(f"/v1/interactions/{unedited}").json()["edit"] is None),
        ("patch", "/v1/users/{user}/preferences/{preference_id}"): (
            f"/v1/users/owner/preferences/{preference['id']}", {"text": "corrected"},
            lambda: c.get("/v1/users/owner/preferences").json()["items"][-1]["text"] == preference["text"]),
        ("patch", "/v1/users/{user}/rules/{rule_id}"): (
            f"/v1/users/owner/rules/{rules[0]['id']}", {"text": "Regards, Sam", "enabled": True},
            lambda: c.get("/v1/users/owner/preferences").json()["rules"] == rules),
    }
    c.close()


def test_a_lone_surrogate_in_any_string_field_is_a_422_before_any_work(server, targets):
    """Issue 16.1: hypothesis puts texts holding a lone surrogate in every string of every request body the
    OpenAPI schema describes (union branches, array items, nested parts, unknown fields); each answer is a 422
    with the error body and a request id, and nothing was stored or changed. Path parameters cannot carry one:
    a URL is percent-encoded UTF-8, and the server decodes invalid sequences to U+FFFD."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    spec = httpx.get(server.url + "/openapi.json").json()
    with_body = {(method, path): op for path, ops in spec["paths"].items() for method, op in ops.items()
                 if "requestBody" in op}
    assert set(with_body) == set(targets)  # a new route with a body must join this test
    around = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=6)  # control characters: a 400
    with_surrogate = st.tuples(around, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), around).map("".join)
    client = httpx.Client(base_url=server.url, timeout=30)
    covered = []
    for (method, _), op in with_body.items():
        url, base, unchanged = targets[(method, _)]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        for where, body, free in string_slots(spec, schema, base):
            covered.append(f"{method} {_} {where}")

            @settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(text=with_surrogate)
            def check(text):
                content = json.dumps(body).replace(json.dumps(SLOT), json.dumps(text))  # \udXXX escapes
                resp = client.request(method.upper(), url, content=content,
                                      headers={"content-type": "application/json"})
                assert resp.status_code == 422, (where, text, resp.text)
                message = error(resp)["message"]
                assert SURROGATE_MESSAGE in message or not free, (where, message)
                assert unchanged(), where

            check()
    client.close()
    assert {"post /v1/chat/completions .model", "post /v1/chat/completions .messages[0].content",
            "post /v1/chat/completions .messages[0].content[0].text", "post /v1/chat/completions .an_unknown_field",
            "post /v1/generate .context", "patch /v1/users/{user}/preferences/{preference_id} .text",
            "patch /v1/users/{user}/rules/{rule_id} .text"} <= set(covered)


def test_the_issues_request_is_a_422_with_the_request_id_on_a_kept_connection(server):
    """The outside test's request: a 500 after the generation had run and stored the interaction, no
    X-Request-ID, connection closed. Now a 422 before any work, and the connection serves the next request."""
    conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
    body = '{"user":"bob-16","model":"\\ud800","messages":[{"role":"user","content":"hi"}]}'
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json", "X-Request-ID": "surrogate-16"})
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (422, {"error": {
        "message": f"model: {SURROGATE_MESSAGE}", "type": "invalid_request_error", "code": "invalid_request"}})
    assert resp.getheader("x-request-id") == "surrogate-16" and resp.getheader("connection") != "close"
    sock = conn.sock
    conn.request("GET", "/v1/users/bob-16/export")
    again = conn.getresponse()
    assert again.status == 404 and json.loads(again.read())["error"]["message"] == "unknown user 'bob-16'"
    assert conn.sock is sock  # the same connection: nothing was generated or stored for bob-16
    conn.close()


def test_an_unexpected_error_is_a_500_with_the_request_id_on_a_kept_connection(server):
    """Whatever fails unforeseen is answered by the request middleware: the error body, the request id in the
    header and in the log (with the traceback on indented lines), and the connection stays open."""
    conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
    server.broken.touch()
    try:
        conn.request("POST", "/v1/generate", body=json.dumps({"user": "crash", "context": ARTICLE}),
                     headers={"Content-Type": "application/json", "X-Request-ID": "broken-16"})
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (500, {"error": {
            "message": "internal error", "type": "server_error", "code": "internal_error"}})
        assert resp.getheader("x-request-id") == "broken-16" and resp.getheader("connection") != "close"
    finally:
        server.broken.unlink()
    sock = conn.sock
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()
    log = server.log()
    assert re.search(r"ERROR redline\.api\.observability \[broken-16\] unhandled error on POST /v1/generate\n"
                     r"    Traceback \(most recent call last\):\n", log)
    # the generator's body had no choices: a KeyError the server did not foresee
    assert re.search(r"    KeyError: 'choices'\n.* INFO redline\.access \[broken-16\] POST /v1/generate 500 ", log)


# -- 2: log lines a client cannot forge ---------------------------------------------------------------

def test_client_controlled_values_stay_on_one_escaped_log_line(server):
    """Issue 16.2: CR, LF and an ANSI escape in the path (percent-encoded, as HTTP requires), a header whose
    bytes decode to NEL, CSI and the bytes of U+2028, and an X-Request-ID holding one: exactly one log line,
    the path as sent, the header escaped, a fresh request id. CR, LF or ESC in a header never reach the log:
    the HTTP parser refuses the request."""
    forged = "2026-11-23 00:00:00,000 INFO redline.access [forged] DELETE /v1/users/alice 200 1.0ms"
    path = "/v1/users/x%0d%0a" + forged.replace(" ", "%20").replace("[", "%5B").replace("]", "%5D") + "%1b[2J/export"
    answer = raw_request(server.url, f"GET {path} HTTP/1.1\r\n".encode() +
                          b"User-Agent: agent\x85forged-nel\x9b2J\xe2\x80\xa8\r\nX-Request-ID: id\x85forged\r\n")
    status, headers = answer.split(b"\r\n", 1)[0], answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert status.startswith(b"HTTP/1.1 4"), answer
    rid = re.search(r"(?im)^x-request-id: ([0-9a-f]{32})\r?$", headers).group(1)  # a fresh id, not the client's
    for bad_header in (b"User-Agent: esc\x1b[2Jforged-esc\r\n", b"X-Request-ID: cr\rforged-cr\r\n"):
        assert raw_request(server.url, b"GET /health HTTP/1.1\r\n" + bad_header).startswith(b"HTTP/1.1 400")
    httpx.get(server.url + "/health")  # a later line: the ones before are complete
    lines = server.log().splitlines()
    mine = [line for line in lines if rid in line]
    assert len(mine) == 1 and [line for line in lines if "forged" in line] == mine, mine
    assert re.search(rf"\[{rid}\] GET {re.escape(path)} 4\d\d [\d.]+ms agent\\x85forged-nel\\x9b2Jâ\\x80¨$",
                     mine[0]), mine
    assert not [line for line in lines if line.startswith("2026-11-23 00:00:00,000")]


# -- 4 (and 3): deleted text leaves every file of the data dir; 6: logs carry no text ----------------

def _spellings(text: str) -> list[bytes]:
    """How a text can sit in a file: UTF-8 (SQLite, logs), UTF-16 and UTF-32 (numpy string arrays)."""
    return [text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-32-le")]


def _reward_pairs(data: Path, *, every: bool = False):
    """The pairs the current reward checkpoint was trained on (None without one); ``every``: of each stored one."""
    import sqlite3

    with sqlite3.connect(f"file:{data / 'redline.db'}?mode=ro", uri=True) as db:
        pairs = [json.loads(meta).get("pairs") for (meta,) in
                 db.execute("SELECT meta FROM checkpoints WHERE kind = 'reward' ORDER BY id")]
    return pairs if every else (pairs[-1] if pairs else None)


@pytest.fixture(scope="module")
def deletion(tmp_path_factory):
    """Users leaver and keeper whose texts hold a marker each, reward heads trained on their pairs (so derived
    caches exist), then a hard delete of leaver through the API and later a SIGTERM; every file scanned along
    the way (user ids are logged as given, so the markers sit in the texts only)."""
    data = tmp_path_factory.mktemp("deletion")
    server = scripted_server(data, REDLINE_AUTH="false", REDLINE_REWARD_RETRAIN_EVERY="1").wait_ready()
    try:
        markers = {user: f"zq{user}{uuid.uuid4().hex[:12]}" for user in ("leaver", "keeper")}
        c = httpx.Client(base_url=server.url, timeout=60)
        texts = {user: [] for user in markers}
        for user, marker in markers.items():
            for r in range(3):
                filler = " ".join(["the council discussed the transit budget at length"] * (120 if r == 0 else 3))
                context = f"{marker} article {r}: {filler}"  # round 0 spills over one SQLite page
                made = c.post("/v1/generate", json={"user": user, "context": context})
                assert made.status_code == 200, made.text
                edit = f"{marker} kept version {r}."
                assert c.post(f"/v1/interactions/{made.json()['interaction_id']}/edit",
                              json={"edited_text": edit}).status_code == 202
                texts[user] += [context, edit, made.json()["text"]]
        preference = wait_learned(c, "leaver", 3)["preferences"][0]["text"]
        wait_learned(c, "keeper", 3)
        deadline = time.monotonic() + 120
        while _reward_pairs(data) != 6:  # heads trained on these pairs: derived data written
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        digests = {f"sha1 of leaver's text {i}": [hashlib.sha1(t.encode()).hexdigest().encode(),
                                                  hashlib.sha1(t.encode()).hexdigest().encode("utf-32-le")]
                   for i, t in enumerate(texts["leaver"])}
        needles = {"leaver": _spellings(markers["leaver"]), "keeper": _spellings(markers["keeper"]), **digests}
        before = files_holding(data, needles)
        deleted = c.delete("/v1/users/leaver")
        assert deleted.status_code == 200 and deleted.json()["removed"]["users"] == 1, deleted.text
        after_delete = files_holding(data, needles)
        while _reward_pairs(data) != 3:  # the retraining the delete queued ran: only keeper's pairs are in the reward
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        checkpoints_after_retrain = _reward_pairs(data, every=True)
        after_retrain = files_holding(data, needles)
        c.close()
        server.stop()  # SIGTERM
    except BaseException:  # a failing fixture never reaches a teardown: stop the servers here
        server.stop()
        raise
    assert server.proc.returncode in (0, -signal.SIGTERM), server.log()
    yield {"data": data, "markers": markers, "digests": set(digests), "before": before, "after_delete": after_delete,
           "after_retrain": after_retrain, "checkpoints_after_retrain": checkpoints_after_retrain,
           "after_sigterm": files_holding(data, needles), "log": server.log(), "preference": preference}


def test_hard_delete_leaves_no_text_of_the_user_in_any_file(deletion):
    """Issue 16.4: right after DELETE /v1/users/leaver (server running), after the retraining it queued and again
    after a clean SIGTERM, no file under the data dir (database, WAL, shm, the servers' logs) holds leaver's
    marker (free pages zeroed by secure_delete, the WAL checkpointed), while keeper's texts are intact; the
    SIGTERM merged the WAL into redline.db and removed it. Once the retraining ran, the store's only reward
    checkpoint is trained on keeper's three pairs (none on leaver's remains)."""
    assert any("leaver" in names for names in deletion["before"].values())  # the scan sees what is there
    assert deletion["checkpoints_after_retrain"] == [3]
    for scan in ("after_delete", "after_retrain", "after_sigterm"):
        assert {f: n for f, n in deletion[scan].items() if "leaver" in n} == {}, (scan, deletion[scan])
    assert "keeper" in deletion["after_sigterm"].get("redline.db", []), deletion["after_sigterm"]
    assert not (deletion["data"] / "redline.db-wal").exists() and not (deletion["data"] / "redline.db-shm").exists()


def test_hard_delete_leaves_no_key_derived_from_the_users_texts(deletion):
    """Issue 16.3, guarded here: no file keeps the sha1 of one of leaver's texts (contexts, edits, drafts)."""
    for scan in ("after_delete", "after_retrain", "after_sigterm"):
        assert {f: n for f, n in deletion[scan].items() if set(n) & deletion["digests"]} == {}, deletion[scan]


def test_info_logs_carry_ids_and_lengths_not_the_users_texts(deletion):
    """Issue 16.6: the server's log (INFO) names users and interactions and gives lengths, never a context, an
    edit or a preference (REDLINE_LOG_TEXT=true would add them; tests/test_agent.py checks that)."""
    log = deletion["log"]
    assert re.search(r"INFO redline\.agent\.generate \[\w+\] generate user=leaver interaction=[0-9a-f]{32} "
                     r"neighbours=\d+ .*context_chars=\d+ preference_chars=\d+ ", log)
    assert re.search(r"INFO redline\.agent\.learning \[job-[\d-]+\] learned interaction=[0-9a-f]{32} cost=\d+ "
                     r"kind=inferred preference_chars=\d+", log)
    assert deletion["preference"] not in log
    assert not [m for m in deletion["markers"].values() if m in log]
