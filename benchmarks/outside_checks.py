"""The outside checks: the server tried as a new user and an attacker would, on loopback, with the scripted generator.

Each section starts what it needs (real server processes from ``tests/servers.py``: the real app on uvicorn, the real
embedder, the scripted generator) and returns its figures and the failures it saw:

- ``isolation``: tenant isolation across every route of ``/openapi.json`` and every ``/ui`` page: a second tenant,
  with its key and with its inspector session, asks for, edits and deletes the first tenant's user, interactions,
  preferences and rules by their real ids. Every answer must be a 404 (or a list without them) that holds none of
  the first tenant's texts, and the first tenant's data must be unchanged afterwards.
- ``schemathesis``: ``schemathesis run`` with all its checks (``--checks all``; the two refusals JSON Schema cannot
  state, and 413 as a refusal, let through by name: ``doubles.conformance``) over every operation: 0
  failures, and 0 answers >= 500 in the server's access log.
- ``hostile``: a few hundred hand-made hostile requests (control characters in every string of every body, wrong
  content types and encodings, deep nesting, oversized and broken bodies, odd ids, CSRF and origin forgeries on the
  state-changing routes, log forging): each answered with the expected 4xx and the error body, none 5xx, none
  echoing a control character, and the server's log one line per request whatever the path holds.
- ``deletion``: a user with marker texts, learned and with reward heads trained on their pairs, hard-deleted through
  the API: no file of the data directory (database, WAL, checkpoints, the log) holds a byte of their texts, right
  after the delete and after SIGTERM; another user's texts are still there.

- ``kill9``: edits accepted under load, ``redline serve`` killed with SIGKILL (the supervisor and every process it
  runs, the learner mid-batch) ``--kill-rounds`` times, then started again until the queue is empty: every accepted
  edit is learned (0 lost), exactly once (0 duplicated: one preference, one pair, one pair-features row per edit),
  and the counts of learned edits, done jobs, preferences, pairs and features agree; no interaction not learned has
  rule evidence, and no user's reward state folds in more steps than the user has pairs.

A section is a function ``(args) -> Section`` listed in ``SECTIONS``. Prints a table, writes
``benchmarks/results/outside_checks.json``, exits 1 when any check failed.

    .venv/bin/python benchmarks/outside_checks.py                          # all sections
    .venv/bin/python benchmarks/outside_checks.py --only isolation,hostile
    .venv/bin/python benchmarks/outside_checks.py --fuzz-examples 300       # more schemathesis cases per operation
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from servers import create_key, files_holding, raw_request, scripted_server, wait_learned  # noqa: E402

ARTICLE = ("The city council approved a new budget on Tuesday that raises spending on public transit by 12 percent "
           "and funds two new bus lines connecting the northern suburbs to the downtown business district.")
CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")  # what no answer may carry back (JSON escapes them)
# The operations ``isolation`` attacks; the others hold nothing of a tenant. A new operation fails the section until
# it is attacked here too (or named tenantless).
ATTACKED = {"POST /v1/generate", "POST /v1/chat/completions", "POST /v1/interactions/{interaction_id}/edit",
            "GET /v1/interactions/{interaction_id}", "GET /v1/users", "GET /v1/users/{user}/preferences",
            "PATCH /v1/users/{user}/preferences/{preference_id}", "DELETE /v1/users/{user}/preferences/{preference_id}",
            "PATCH /v1/users/{user}/rules/{rule_id}", "DELETE /v1/users/{user}/rules/{rule_id}",
            "GET /v1/users/{user}/export", "DELETE /v1/users/{user}", "POST /v1/learning/retry"}
TENANTLESS = {"GET /v1/models", "GET /health", "GET /ready", "GET /metrics"}


@dataclass
class Section:
    """A section's figures and the failures it saw (each a short sentence; none means the section passed)."""

    figures: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, failure: str) -> bool:
        if not ok:
            self.failures.append(failure)
        return ok


def _client(url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _learned_user(c: httpx.Client, user: str, marker: str, rounds: int = 3) -> list[str]:
    """``rounds`` learned edits of ``user`` whose texts carry ``marker`` (the last teaches a closing-line rule);
    returns the interaction ids, plus one interaction left unedited at the end."""
    ids = []
    for r in range(rounds):
        made = c.post("/v1/generate", json={"user": user, "context": f"{marker} {ARTICLE} ({r})"}).json()
        kept = made["text"].removeprefix("Draft: ") + f" {marker} kept {r}." + ("\n\nBest, Sam" if r == rounds - 1
                                                                                 else "")
        assert c.post(f"/v1/interactions/{made['interaction_id']}/edit", json={"edited_text": kept}).status_code == 202
        ids.append(made["interaction_id"])
    wait_learned(c, user, rounds)
    ids.append(c.post("/v1/generate", json={"user": user, "context": f"{marker} unedited"}).json()["interaction_id"])
    return ids


def _csrf(page: httpx.Response) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)


def _session(url: str, key: str) -> tuple[httpx.Client, str]:
    """A client logged in to the inspector with ``key``, and its CSRF token."""
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/ui/login")
    assert client.post("/ui/login", data={"key": key, "csrf_token": _csrf(form)}).status_code == 303
    return client, _csrf(client.get("/ui"))


def _start(args, name: str, tenants: tuple[str, ...] = (), **env: str):
    """A scripted-generator server on a fresh data directory under the run's folder, a key per tenant made first:
    ``(server, data_dir, keys)``. The caller stops it."""
    data = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=args.work))
    keys = {tenant: create_key(data, tenant) for tenant in tenants}
    return scripted_server(data, **env).wait_ready(), data, keys


def _db(data: Path) -> sqlite3.Connection:
    """The server's store, read-write (WAL: the server's processes keep writing meanwhile)."""
    return sqlite3.connect(data / "redline.db", timeout=30, isolation_level=None)


def _no_5xx(out: Section, server) -> None:
    out.figures["server_5xx"] = sum(status >= 500 for status in _log_statuses(server.log()))
    out.check(out.figures["server_5xx"] == 0, f"{out.figures['server_5xx']} answers >= 500 in the server log")


def _log_statuses(log: str) -> list[int]:
    """The status of every request in a server's access log, but the readiness probe's (503 while warming up)."""
    return [int(status) for path, status in re.findall(r"INFO redline\.access \[[^\]]*\] \S+ (\S+) (\d{3}) ", log)
            if path != "/ready"]


# -- isolation ----------------------------------------------------------------------------------------------------

def isolation(args) -> Section:
    out = Section()
    server, data, keys = _start(args, "isolation", ("victim", "attacker"))
    try:
        victim, attacker = _client(server.url, keys["victim"]), _client(server.url, keys["attacker"])
        marker = f"zqvictim{uuid.uuid4().hex[:10]}"
        ids = _learned_user(victim, "vic", marker)
        learned, unedited = ids[:-1], ids[-1]
        before = victim.get("/v1/users/vic/export").json()
        prefs = [p["id"] for p in before["preferences"]]
        rules = [r["id"] for r in victim.get("/v1/users/vic/preferences").json()["rules"]]
        out.check(bool(prefs) and bool(rules), f"the victim has no preference or rule to aim at: {prefs} {rules}")
        _learned_user(attacker, "att", "attackers-own", rounds=1)  # the attacker's own user, for mixed ids

        def expect(resp: httpx.Response, what: str, statuses=(404,)) -> None:
            out.figures["checks"] = out.figures.get("checks", 0) + 1
            leaked = marker.encode() in resp.content
            if leaked:
                out.figures["leaks"] = out.figures.get("leaks", 0) + 1
            out.check(resp.status_code in statuses and not leaked,
                      f"{what}: {resp.status_code}{' LEAK' if leaked else ''} {resp.text[:160]}")

        session, token = _session(server.url, keys["attacker"])
        for name, client, headers in (("key", attacker, {}), ("session", session, {"X-CSRF-Token": token})):
            for iid in (learned[0], unedited):
                expect(client.get(f"/v1/interactions/{iid}"), f"{name}: GET another tenant's interaction")
                expect(client.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "mine"}, headers=headers),
                       f"{name}: POST an edit to another tenant's interaction")
            for user in ("vic", "att"):  # the victim's ids under the victim's name and under the attacker's own
                for pid in prefs:
                    expect(client.patch(f"/v1/users/{user}/preferences/{pid}", json={"text": "mine"}, headers=headers),
                           f"{name}: PATCH preference {pid} as {user}")
                    expect(client.delete(f"/v1/users/{user}/preferences/{pid}", headers=headers),
                           f"{name}: DELETE preference {pid} as {user}")
                for rid in rules:
                    expect(client.patch(f"/v1/users/{user}/rules/{rid}", json={"enabled": False}, headers=headers),
                           f"{name}: PATCH rule {rid} as {user}")
                    expect(client.delete(f"/v1/users/{user}/rules/{rid}", headers=headers),
                           f"{name}: DELETE rule {rid} as {user}")
            expect(client.get("/v1/users/vic/preferences"), f"{name}: GET another tenant's preferences")
            expect(client.get("/v1/users/vic/export"), f"{name}: GET another tenant's export")
            expect(client.delete("/v1/users/vic", headers=headers), f"{name}: DELETE another tenant's user")
            with _db(data) as db:  # one of the victim's jobs parked: the attacker's retry must not touch it
                db.execute("UPDATE jobs SET status = 'parked', error_kind = 'error' WHERE interaction_id = ?",
                           (learned[0],))
            retried = client.post("/v1/learning/retry", headers=headers)
            expect(retried, f"{name}: POST /v1/learning/retry", (200,))
            with _db(data) as db:
                status = db.execute("SELECT status FROM jobs WHERE interaction_id = ?", (learned[0],)).fetchone()[0]
                db.execute("UPDATE jobs SET status = 'done', error_kind = NULL WHERE interaction_id = ?",
                           (learned[0],))
            out.check(retried.json().get("requeued") == 0 and status == "parked",
                      f"{name}: the attacker's retry queued the victim's parked job again: {retried.text} {status}")
            listing = client.get("/v1/users")
            expect(listing, f"{name}: GET /v1/users", (200,))
            out.check("vic" not in [u["user"] for u in listing.json().get("users", [])],
                      f"{name}: the victim is in the attacker's user list")
        for path in ("/ui/users/vic", "/ui/users/vic/delete"):
            expect(session.get(path), f"page {path}")
        expect(session.post("/ui/users/vic/delete", data={"csrf_token": token, "confirm": "vic"}),
               "page POST /ui/users/vic/delete")
        page = session.get("/ui")
        expect(page, "page /ui", (200,))
        out.check("/ui/users/vic" not in page.text, "the victim is on the attacker's /ui page")
        # the same user name in the attacker's tenant is the attacker's own user: nothing of the victim shapes it
        for resp, what in ((attacker.post("/v1/generate", json={"user": "vic", "context": f"{marker} {ARTICLE}"}),
                            "generate for the victim's name"),
                           (attacker.post("/v1/chat/completions", json={"user": "vic", "messages": [
                               {"role": "user", "content": ARTICLE}]}), "chat for the victim's name")):
            body = resp.json()
            out.figures["checks"] += 1
            out.check(resp.status_code == 200 and not body.get("neighbours") and body.get("preference") is None,
                      f"{what}: the victim's preferences reached the attacker's request: {resp.text[:200]}")
        for resp in (victim.get(f"/v1/interactions/{unedited}"), victim.get("/v1/users/vic/export")):
            out.check(resp.status_code == 200, f"the victim lost access: {resp.status_code}")
        after = victim.get("/v1/users/vic/export").json()
        out.check(after == before, "the victim's data changed during the attacks")
        operations = {f"{method.upper()} {path}" for path, ops in httpx.get(server.url + "/openapi.json").json()
                      ["paths"].items() for method in ops}
        out.check(operations == ATTACKED | TENANTLESS,
                  f"operations not attacked here: {sorted(operations - ATTACKED - TENANTLESS)}")
        out.figures["operations_attacked"] = (f"{len(ATTACKED & operations)} of {len(operations)} (the others hold "
                                              f"no tenant data: {', '.join(sorted(TENANTLESS))})")
        out.figures["ui_pages_attacked"] = 4
        out.figures.setdefault("leaks", 0)
        _no_5xx(out, server)
    finally:
        server.stop()
    return out


# -- schemathesis -------------------------------------------------------------------------------------------------

def schemathesis_run(args) -> Section:
    out = Section()
    server, data, keys = _start(args, "fuzz", ("fuzz",))
    report = data / "schemathesis"
    try:
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "doubles.conformance",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}
        cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", server.url + "/openapi.json",
               "-H", f"Authorization: Bearer {keys['fuzz']}", "--checks", "all",
               "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
               "--max-examples", str(args.fuzz_examples), "--workers", "1", "--seed", str(args.seed),
               "--generation-database", "none", "--no-color", "--report", "json", "--report-dir", str(report)]
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.fuzz_timeout, cwd=data)
        out.figures["seconds"] = round(time.monotonic() - started, 1)
        found = list(report.glob("json-*.json"))
        if not out.check(bool(found), f"schemathesis wrote no report (exit {proc.returncode}): {proc.stdout[-2000:]}"):
            return out
        result = json.loads(found[0].read_text())
        cases = result["test_cases"]
        out.figures.update(cases=cases["generated"], failures=cases["unique_failures"], errored=cases["errored"],
                           operations=result["operations"]["tested"], exit_code=result["exit_code"],
                           checks="all (positive_data_acceptance and negative_data_rejection as "
                                  "doubles.conformance words them)",
                           warnings={k: v for k, v in result["warnings"].items() if v})
        out.figures["requests_in_server_log"] = len(_log_statuses(server.log()))
        _no_5xx(out, server)
        out.check(result["exit_code"] == 0 and cases["unique_failures"] == 0 and cases["errored"] == 0,
                  f"schemathesis: {cases['unique_failures']} failures, {cases['errored']} errors:\n"
                  + proc.stdout[proc.stdout.find("FAILURES"):][:4000])
    finally:
        server.stop()
    return out


# -- hostile inputs -----------------------------------------------------------------------------------------------

BAD_CHARS = {"NUL": "\x00", "ESC": "\x1b", "BEL": "\x07", "backspace": "\b", "DEL": "\x7f", "US": "\x1f"}


def _string_paths(value, path=()):
    """``(path, string)`` for every string in a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _string_paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _string_paths(child, (*path, i))


def _replace(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def hostile(args) -> Section:
    out = Section()
    server, _, keys = _start(args, "hostile", ("acme",), REDLINE_MAX_BODY_BYTES="65536")
    key = keys["acme"]
    try:
        c = _client(server.url, key)
        ids = _learned_user(c, "owner", "zqowner", rounds=1)
        pref = c.get("/v1/users/owner/preferences").json()["items"][0]["id"]
        rule = c.get("/v1/users/owner/preferences").json()["rules"][0]["id"]
        before = c.get("/v1/users/owner/export").json()
        bodies = {
            ("POST", "/v1/generate"): {"user": "h-gen", "context": ARTICLE, "task": "email"},
            ("POST", "/v1/chat/completions"): {"user": "h-chat", "model": "redline", "metadata": {"note": "x"},
                                               "messages": [{"role": "system", "content": "Be brief."},
                                                            {"role": "user", "content": "hi", "name": "ann"},
                                                            {"role": "user", "content": [{"type": "text",
                                                                                          "text": "hello"}]}]},
            ("POST", f"/v1/interactions/{ids[-1]}/edit"): {"edited_text": "kept"},
            ("PATCH", f"/v1/users/owner/preferences/{pref}"): {"text": "corrected"},
            ("PATCH", f"/v1/users/owner/rules/{rule}"): {"text": "Regards, Sam"},
        }
        cases: list[tuple[str, str, str, dict, bytes | None, set[int]]] = []  # what, method, path, headers, body, ok
        json_type = {"content-type": "application/json"}
        for (method, path), body in bodies.items():
            for where, text in _string_paths(body):
                for name, char in BAD_CHARS.items():
                    bad = _replace(body, where, text[:1] + char + text[1:])
                    cases.append((f"{name} in {'.'.join(map(str, where))}", method, path, json_type,
                                  json.dumps(bad).encode(), {400}))
                cases.append((f"lone surrogate in {'.'.join(map(str, where))}", method, path, json_type,
                              json.dumps(body).replace(json.dumps(text), '"\\ud800"', 1).encode(), {422}))
            raw = json.dumps(body).encode()
            for ctype, payload in (("text/plain", raw), ("application/x-www-form-urlencoded", b"a=b"),
                                   ("application/xml", b"<a/>"), ("multipart/form-data; boundary=x", raw),
                                   ("application/json; charset=utf-16", raw), (None, raw)):
                cases.append((f"Content-Type {ctype}", method, path, {"content-type": ctype} if ctype else {},
                              payload, {415}))
            text = json.dumps(body)
            for what, payload in (("UTF-16", text.encode("utf-16-le")), ("UTF-16 with BOM", text.encode("utf-16")),
                                  ("UTF-32", text.encode("utf-32-le")), ("UTF-8 BOM", b"\xef\xbb\xbf" + raw),
                                  ("invalid UTF-8", raw[:-2] + b"\xff\xfe}"), ("truncated JSON", raw[:-1]),
                                  ("NaN", raw[:-1] + b', "x": NaN}'), ("trailing garbage", raw + b"]"),
                                  ("nested 1,000 deep", raw[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
                                  ("nested 65 deep", raw[:-1] + b', "x": ' + b"[" * 64 + b"]" * 64 + b"}"),
                                  ("a JSON array", b"[" + raw + b"]"), ("a JSON string", b'"x"'),
                                  ("null", b"null"), ("empty", b"")):
                statuses = {422} if what in ("a JSON array", "a JSON string", "null", "empty") else {400}
                cases.append((what, method, path, json_type, payload, statuses))
            cases.append(("over the body limit", method, path, json_type, b'{"x": "' + b"y" * 70_000 + b'"}', {413}))
        for path in ("/v1/users/..%2f..%2fetc/export", "/v1/users/%00/export", "/v1/users/a%0d%0ab/export",
                     "/v1/users/" + "a" * 300 + "/export", "/v1/users/%e2%80%ae/export", "/v1/interactions/%00",
                     "/v1/interactions/" + "f" * 100, "/v1/users/owner/preferences/0",
                     "/v1/users/owner/preferences/-1", "/v1/users/owner/preferences/99999999999999999999",
                     "/v1/users/owner/rules/1.5", "/v1/users?limit=0", "/v1/users?limit=abc", "/v1/users?offset=-1",
                     "/v1/users/owner/preferences?window=0"):
            cases.append((f"odd path {path[:40]}", "GET", path, {}, None, {404, 405, 422}))
        for method in ("PUT", "TRACE", "POST"):
            cases.append((f"{method} on a preference", method, f"/v1/users/owner/preferences/{pref}", {}, None, {405}))
        for header in ("Bearer", "Bearer  x", "Basic abc", "Bearer rl-" + "x" * 4000, "bearer " + key + "x"):
            cases.append((f"Authorization {header[:12]}", "GET", "/v1/users", {"authorization": header}, None,
                          {401}))

        for what, method, path, headers, body, ok in cases:
            resp = c.request(method, path, content=body, headers=headers)
            answered_ok = resp.status_code in ok and bool(resp.headers.get("x-request-id"))
            body_ok = resp.status_code < 400 or set(resp.json().get("error", {})) == {"message", "type", "code"}
            out.check(answered_ok and body_ok, f"{what} ({method} {path[:60]}): {resp.status_code} {resp.text[:160]}")
            out.check(not CONTROL.search(resp.content), f"{what}: the answer carries a control character")
        # CSRF and origin: every state-changing request made with a session, without its token or from elsewhere
        session, token = _session(server.url, key)
        changes = [(m, p, b) for (m, p), b in bodies.items()] + [
            ("DELETE", f"/v1/users/owner/preferences/{pref}", None), ("DELETE", f"/v1/users/owner/rules/{rule}", None),
            ("DELETE", "/v1/users/owner", None), ("POST", "/v1/learning/retry", None)]
        forgeries = [({}, "no token"), ({"X-CSRF-Token": "wrong"}, "a wrong token"),
                     ({"X-CSRF-Token": token, "Origin": "http://evil.test"}, "another origin"),
                     ({"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}, "a cross-site fetch")]
        csrf = 0
        for method, path, body in changes:
            for headers, what in forgeries:
                resp = session.request(method, path, json=body, headers=headers)
                csrf += 1
                out.check(resp.status_code == 403, f"CSRF with {what} on {method} {path}: {resp.status_code}")
        for form_path, form in (("/ui/users/owner/delete", {"confirm": "owner"}), ("/ui/logout", {})):
            for headers, what in forgeries:
                data_ = {**form, **({"csrf_token": headers["X-CSRF-Token"]} if "X-CSRF-Token" in headers else {})}
                resp = session.post(form_path, data=data_, headers={k: v for k, v in headers.items()
                                                                    if k != "X-CSRF-Token"})
                csrf += 1
                out.check(resp.status_code == 403, f"CSRF with {what} on POST {form_path}: {resp.status_code}")
        out.check(c.get("/v1/users/owner/export").json() == before, "a hostile request changed the owner's data")
        # log forging: CR, LF, ESC in a path; NEL and the bytes of U+2028 in a header; one log line each
        forged = "1999-01-01 00:00:00,000 INFO redline.access [forged] DELETE /v1/users/owner 200"
        path = "/v1/users/x%0d%0a" + forged.replace(" ", "%20").replace("[", "%5B").replace("]", "%5D") + "%1b[2J"
        head = f"GET {path} HTTP/1.1\r\n".encode() + b"User-Agent: a\x85forged\xe2\x80\xa8\r\n"
        answer = raw_request(server.url, head)
        rid = re.search(rb"(?im)^x-request-id: ([0-9a-f]{32})\r?$", answer).group(1).decode()
        c.get("/health")
        lines = server.log().splitlines()
        out.check(len([line for line in lines if rid in line]) == 1 and
                  not [line for line in lines if line.startswith("1999-01-01")], "a request forged a log line")
        out.figures.update(requests=len(cases), csrf_and_origin=csrf, log_forging=1)
        _no_5xx(out, server)
    finally:
        server.stop()
    return out


# -- deletion -----------------------------------------------------------------------------------------------------

def deletion(args) -> Section:
    out = Section()
    server, data, _ = _start(args, "deletion", REDLINE_AUTH="false", REDLINE_REWARD_RETRAIN_EVERY="2")
    try:
        c = _client(server.url)
        markers = {user: f"zq{user}{uuid.uuid4().hex[:12]}" for user in ("leaver", "keeper")}
        texts = []
        for user, marker in markers.items():
            for r in range(3):
                filler = " ".join(["the council discussed the transit budget at length"] * (120 if r == 0 else 3))
                made = c.post("/v1/generate", json={"user": user, "context": f"{marker} article {r}: {filler}"}).json()
                edit = f"{marker} kept version {r}."
                c.post(f"/v1/interactions/{made['interaction_id']}/edit", json={"edited_text": edit})
                texts += [made["text"], edit] if user == "leaver" else []
            wait_learned(c, user, 3)
        deadline = time.monotonic() + 120

        def checkpoints() -> int:  # reward checkpoints are rows of the store
            with _db(data) as db:
                return db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]

        while not checkpoints() and time.monotonic() < deadline:
            time.sleep(0.2)
        out.check(checkpoints() > 0, "no reward checkpoint was trained")
        needles = {user: [m.encode(enc) for enc in ("utf-8", "utf-16-le", "utf-32-le")] for user, m in markers.items()}
        needles.update({f"sha1 {i}": [hashlib.sha1(t.encode()).hexdigest().encode()] for i, t in enumerate(texts)})
        before = files_holding(data, needles)
        out.check(any("leaver" in n for n in before.values()), "the scan does not see the leaver's text before")
        deleted = c.delete("/v1/users/leaver")
        out.check(deleted.status_code == 200, f"DELETE /v1/users/leaver: {deleted.status_code}")
        after = files_holding(data, needles)
    finally:
        server.stop()
    after_stop = files_holding(data, needles)
    leaver = {scan: {f: n for f, n in hits.items() if set(n) - {"keeper"}}
              for scan, hits in (("after_delete", after), ("after_sigterm", after_stop))}
    out.figures.update(files_scanned=sum(1 for p in data.rglob("*") if p.is_file()),
                       files_with_leaver_text_before=sum(1 for n in before.values() if "leaver" in n),
                       after_delete=len(leaver["after_delete"]), after_sigterm=len(leaver["after_sigterm"]),
                       keeper_text_kept="keeper" in after_stop.get("redline.db", []))
    for scan, hits in leaver.items():
        out.check(not hits, f"{scan}: the deleted user's text is still in {hits}")
    out.check(out.figures["keeper_text_kept"], "the other user's text is gone from redline.db")
    return out


# -- kill9 --------------------------------------------------------------------------------------------------------

def _load(url: str, stop: threading.Event, accepted: list, lock: threading.Lock, worker: int, users: int) -> None:
    """Generate then edit, again and again, until ``stop`` (or the server is gone); record each edit answered 202."""
    n = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            n += 1
            try:
                made = client.post("/v1/generate", json={"user": f"u{(worker + n) % users}",
                                                         "context": f"{ARTICLE} w{worker} n{n}"})
                if made.status_code != 200:
                    continue
                iid = made.json()["interaction_id"]
                kept = f"Transit spending up 12 percent; worker {worker} round {n} kept this."
                resp = client.post(f"/v1/interactions/{iid}/edit", json={"edited_text": kept})
            except httpx.TransportError:  # the server was killed: the load of this round ends
                return
            if resp.status_code == 202:
                with lock:
                    accepted.append((iid, kept))


def _kill9_everything(server) -> None:
    """SIGKILL the supervisor and every process it runs, at once."""
    for pid in [*server.children().values(), server.proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.proc.wait(10)
    if server.generator is not None:
        server.generator.stop()


def kill9(args) -> Section:
    out = Section()
    data = Path(tempfile.mkdtemp(prefix="kill9-", dir=args.work))
    env = dict(REDLINE_AUTH="false", REDLINE_REWARD_RETRAIN_EVERY="200")
    accepted: list[tuple[str, str]] = []
    lock = threading.Lock()
    per_round = []
    for _ in range(args.kill_rounds):
        server = scripted_server(data, **env).wait_ready()
        before = len(accepted)
        stop = threading.Event()
        threads = [threading.Thread(target=_load, args=(server.url, stop, accepted, lock, w, 40), daemon=True)
                   for w in range(args.kill_clients)]
        for thread in threads:
            thread.start()
        time.sleep(args.kill_after)
        _kill9_everything(server)  # mid-load: requests in flight, the learner mid-batch
        stop.set()
        for thread in threads:
            thread.join(60)
        per_round.append(len(accepted) - before)
    server = scripted_server(data, **env).wait_ready()  # started again: it learns what is left
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with _db(data) as db:
                left = db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'learn' AND status IN ('pending', 'running')"
                                  ).fetchone()[0]
            if not left:
                break
            time.sleep(0.5)
        out.check(not left, f"{left} learning jobs still queued after 600 s")
        time.sleep(2)  # a retraining in progress publishes its states
    finally:
        server.stop()
    with _db(data) as db:
        one = lambda sql, *p: db.execute(sql, p).fetchone()[0]  # noqa: E731
        kept = dict(db.execute("SELECT interaction_id, edited_text FROM edits WHERE learned_at IS NOT NULL"))
        lost = [iid for iid, text in accepted if kept.get(iid) != text]
        dup_prefs = one("SELECT COUNT(*) FROM (SELECT interaction_id FROM preferences WHERE interaction_id IS NOT NULL"
                        " GROUP BY interaction_id HAVING COUNT(*) > 1)")
        dup_pairs = one("SELECT COUNT(*) FROM (SELECT interaction_id FROM pairs WHERE interaction_id IS NOT NULL"
                        " GROUP BY interaction_id HAVING COUNT(*) > 1)")
        counts = {
            "edits": one("SELECT COUNT(*) FROM edits"),
            "learned_edits": len(kept),
            "done_jobs": one("SELECT COUNT(*) FROM jobs WHERE kind = 'learn' AND status = 'done'"),
            "other_jobs": one("SELECT COUNT(*) FROM jobs WHERE kind = 'learn' AND status != 'done'"),
            "preferences": one("SELECT COUNT(*) FROM preferences WHERE interaction_id IS NOT NULL"),
            "pairs": one("SELECT COUNT(*) FROM pairs WHERE interaction_id IS NOT NULL"),
            "pair_features": one("SELECT COUNT(*) FROM pair_features f JOIN pairs p ON p.id = f.pair_id"
                                 " WHERE p.interaction_id IS NOT NULL"),
            "interactions_with_rule_evidence": one("SELECT COUNT(DISTINCT interaction_id) FROM rule_observations"),
        }
        # Each user's stored reward state under the current checkpoint folds in each of their pairs at most once
        # (``n`` steps); one behind (a retraining published it while later pairs were learned) is replayed from the
        # stored features at its next use, one ahead would hold a pair twice.
        current = db.execute("SELECT name FROM checkpoints WHERE kind = 'reward' ORDER BY id DESC LIMIT 1").fetchone()
        pairs_of = dict(db.execute("SELECT user_id, COUNT(*) FROM pair_features GROUP BY user_id"))
        steps = {user: int(json.loads(state).get("n", 0)) for user, state, checkpoint in db.execute(
            "SELECT user_id, state, checkpoint FROM router_states") if current and checkpoint == current[0]}
        ahead = sum(n > pairs_of.get(user, 0) for user, n in steps.items())
        behind = sum(n < pairs_of.get(user, 0) for user, n in steps.items())
    out.figures.update(accepted_per_round=per_round, accepted=len(accepted), lost=len(lost),
                       duplicated=dup_prefs + dup_pairs, **counts, reward_state_steps=sum(steps.values()),
                       pairs_of_users_with_a_current_state=sum(pairs_of.get(user, 0) for user in steps),
                       users_with_a_current_state=len(steps), states_behind=behind, states_ahead=ahead,
                       clients=args.kill_clients, seconds_before_each_kill=args.kill_after)
    out.check(all(per_round), f"a round accepted nothing: {per_round}")
    out.check(not lost, f"{len(lost)} accepted edits not learned, e.g. {lost[:3]}")
    out.check(dup_prefs + dup_pairs == 0, f"edits learned twice: {dup_prefs} preferences, {dup_pairs} pairs")
    agree = {counts[k] for k in ("learned_edits", "done_jobs", "preferences", "pairs", "pair_features")}
    out.check(len(agree) == 1 and counts["edits"] == counts["learned_edits"] and counts["other_jobs"] == 0,
              f"the counts disagree: {counts}")
    out.check(counts["interactions_with_rule_evidence"] <= counts["learned_edits"],
              "rule evidence for interactions that were not learned")
    out.check(ahead == 0, f"{ahead} users' reward states folded in a pair twice")
    out.check(bool(steps), "no reward state under the current checkpoint")
    return out


SECTIONS: dict[str, Callable[[argparse.Namespace], Section]] = {
    "isolation": isolation, "schemathesis": schemathesis_run, "hostile": hostile, "deletion": deletion,
    "kill9": kill9,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run, comma-separated")
    parser.add_argument("--fuzz-examples", type=int, default=100, help="schemathesis cases per operation and phase")
    parser.add_argument("--fuzz-timeout", type=float, default=3600, help="seconds before schemathesis is stopped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-rounds", type=int, default=3, help="kill9: how many times the server is killed")
    parser.add_argument("--kill-after", type=float, default=20, help="kill9: seconds of load before each kill")
    parser.add_argument("--kill-clients", type=int, default=8, help="kill9: concurrent clients of the load")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "outside_checks.json")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data directories (and logs)")
    args = parser.parse_args()
    args.work = tempfile.mkdtemp(prefix="redline-outside-checks-")
    report = {"command": " ".join(["benchmarks/outside_checks.py", *sys.argv[1:]]),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_at_start": [round(x, 1) for x in os.getloadavg()]},
              "generator": "scripted (tests/doubles/server.py)", "sections": {}}
    failed = False
    for name in args.only.split(","):
        started = time.monotonic()
        print(f"== {name} ...", flush=True)
        section = SECTIONS[name](args)
        report["sections"][name] = {"passed": not section.failures, "seconds": round(time.monotonic() - started, 1),
                                    "figures": section.figures, "failures": section.failures}
        failed |= bool(section.failures)
        print(f"   {'passed' if not section.failures else 'FAILED'}: {json.dumps(section.figures)}")
        for failure in section.failures[:20]:
            print(f"   - {failure}")
    report["machine"]["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("\n| section | passed | figures |\n|---|---|---|")
    for name, result in report["sections"].items():
        print(f"| {name} | {'yes' if result['passed'] else 'NO'} | {json.dumps(result['figures'])} |")
    print(f"\nwritten to {args.out}")
    if args.keep:
        print(f"data directories and server logs: {args.work}")
    else:
        shutil.rmtree(args.work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
