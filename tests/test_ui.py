"""The inspector's pages (``/ui``) against a real server process, with httpx acting as the browser: login and the
session cookie, CSRF on every state change, escaping of user text, tenant isolation, the hard delete's
confirmation step; and the same pages without auth."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys

import httpx
import pytest

from servers import REPO, create_key, error, scripted_server, wait_learned

pytestmark = pytest.mark.integration

CONTEXTS = ["The city council approved a budget raising transit spending by 12 percent and two new bus lines.",
            "A new library opens downtown with late hours and a maker space where teenagers learn <b>soldering</b>.",
            "Researchers report that a small model follows style preferences when it is prompted with them."]
XSS = '<script>document.title = "owned"</script>'


def csrf_of(page: httpx.Response) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)


def session_client(url: str, key: str | None) -> httpx.Client:
    """A client that logged in through the form, as a browser does (or, without a key, one that did not)."""
    client = httpx.Client(base_url=url, timeout=30)
    if key is not None:
        page = client.get("/ui/login")
        resp = client.post("/ui/login", data={"key": key, "csrf_token": csrf_of(page), "next": "/ui"})
        assert resp.status_code == 303, resp.text
    return client


def seed(client: httpx.Client, user: str, edits: list[str]) -> None:
    for context, addition in zip(CONTEXTS, edits):
        out = client.post("/v1/generate", json={"user": user, "context": context}).json()
        kept = out["text"].replace("Draft:", "Summary:") + addition
        resp = client.post(f"/v1/interactions/{out['interaction_id']}/edit", json={"edited_text": kept})
        assert resp.status_code == 202
    wait_learned(client, user, len(edits))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A scripted-generator server (auth on); alice in acme with three learned edits, bob in globex."""
    data = tmp_path_factory.mktemp("ui")
    keys = {t: create_key(data, t) for t in ("acme", "globex", "initech")}
    server = scripted_server(data).wait_ready()
    api = {t: httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {k}"}, timeout=30)
           for t, k in keys.items()}
    seed(api["acme"], "alice", [" Thanks!", " <i>Cheers</i>", " Bye."])
    seed(api["globex"], "bob", [" Regards."])
    yield {"server": server, "url": server.url, "data": data, "keys": keys, "api": api}
    for client in api.values():
        client.close()
    server.stop()


def test_pages_ask_for_a_login_once_and_keep_a_strict_httponly_session(stack):
    url, key = stack["url"], stack["keys"]["acme"]
    anonymous = httpx.Client(base_url=url, timeout=30)
    resp = anonymous.get("/ui/users/alice")
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/login?next=%2Fui%2Fusers%2Falice"
    form = anonymous.get("/ui/login")
    assert form.status_code == 200 and 'name="key" type="password"' in form.text
    token = csrf_of(form)
    wrong = anonymous.post("/ui/login", data={"key": "rl-not-a-key", "csrf_token": token})
    assert wrong.status_code == 401 and "invalid or revoked API key" in wrong.text
    assert anonymous.post("/ui/login", data={"key": key}).status_code == 403  # no CSRF token
    forged = anonymous.post("/ui/login", data={"key": key, "csrf_token": token}, headers={"Origin": "http://evil.test"})
    assert forged.status_code == 403 and "cross-origin request refused" in forged.text
    resp = anonymous.post("/ui/login", data={"key": key, "csrf_token": token, "next": "/ui/users/alice"},
                          headers={"Origin": url})
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/users/alice"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("redline_session=") and "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain HTTP, no trusted proxy saying otherwise
    payload = json.loads(base64.b64decode(cookie.split("=", 1)[1].split(".")[0]))
    assert set(payload) == {"sid", "csrf"}  # the server-side session's id, never the key
    assert key not in cookie and payload["csrf"] != token  # a new token with the new session
    assert anonymous.get("/ui/users/alice").status_code == 200
    assert anonymous.get("/ui/login").headers["location"] == "/ui"  # logged in already
    elsewhere = anonymous.post("/ui/login", data={"key": key, "csrf_token": payload["csrf"],
                                                  "next": "//evil.test/ui"})
    assert elsewhere.headers["location"] == "/ui"  # never sent to another site after logging in
    assert not (stack["data"] / "session-secret").exists()  # the signing secret is the store's


def test_the_users_page_lists_the_tenants_users_as_the_json_route_does(stack):
    page = session_client(stack["url"], stack["keys"]["acme"]).get("/ui")
    assert page.status_code == 200 and 'href="/ui/users/alice"' in page.text and "bob" not in page.text
    (alice,) = stack["api"]["acme"].get("/v1/users").json()["users"]
    assert (alice["user"], alice["edits"], alice["preferences"]) == ("alice", 3, 3)
    row = re.search(r'href="/ui/users/alice">alice</a></td>(.*?)</tr>', page.text, re.S).group(1)
    cells = re.findall(r"<td[^>]*>\s*(.*?)\s*</td>", row, re.S)
    assert cells[:2] == ["3", "3"] and cells[3:5] == [str(alice["mean_cost_first"]), str(alice["mean_cost_last"])]
    assert stack["api"]["globex"].get("/v1/users").json()["users"][0]["user"] == "bob"
    assert stack["api"]["initech"].get("/v1/users").json() == {"users": [], "total": 0, "limit": 100, "offset": 0,
                                                              "window": 10, "next_offset": None}


def test_the_user_page_shows_what_was_learned_and_from_which_edit(stack):
    page = session_client(stack["url"], stack["keys"]["acme"]).get("/ui/users/alice")
    assert page.status_code == 200
    prefs = stack["api"]["acme"].get("/v1/users/alice/preferences").json()
    ids = [int(i) for i in re.findall(r'<article class="card pref" id="pref-(\d+)"', page.text)]
    assert ids == [item["id"] for item in prefs["items"]] and ids == sorted(ids, reverse=True)  # newest first
    for item in prefs["items"]:
        assert f'data-url="/v1/users/alice/preferences/{item["id"]}"' in page.text
        assert f"edit cost <b>{item['cost']}</b>" in page.text
    assert "<del>Draft</del><ins>Summary</ins>" in page.text  # the word diff: struck draft, highlighted edit
    assert "<ins> &lt;i&gt;Cheers&lt;/i&gt;</ins>" in page.text  # the user's markup is text
    assert "teenagers learn &lt;b&gt;soldering&lt;/b&gt;" in page.text  # and so is the context's
    assert 'aria-label="Edit cost of each of 3 edits, oldest to newest"' in page.text
    assert page.text.count('<circle class="dot"') == 3
    assert 'href="/v1/users/alice/export" download="alice.json"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert 'id="rules"' not in page.text or "rules" in prefs  # the rules section shows when the API has rules
    script = httpx.get(stack["url"] + "/ui/static/ui.js")
    assert script.status_code == 200 and "X-CSRF-Token" in script.text


def test_a_script_in_a_preference_renders_as_text(stack):
    api = stack["api"]["acme"]
    first = api.get("/v1/users/alice/preferences").json()["items"][-1]
    assert api.patch(f"/v1/users/alice/preferences/{first['id']}", json={"text": XSS}).status_code == 200
    page = session_client(stack["url"], stack["keys"]["acme"]).get("/ui/users/alice")
    assert "&lt;script&gt;document.title = &#34;owned&#34;&lt;/script&gt;" in page.text
    assert XSS not in page.text and page.text.count("<script") == 1  # only the page's own ui.js


def test_another_tenants_user_is_a_404_on_the_pages_and_through_the_session(stack):
    globex = session_client(stack["url"], stack["keys"]["globex"])
    for path in ("/ui/users/alice", "/ui/users/alice/delete"):
        page = globex.get(path)
        assert page.status_code == 404 and "unknown user &#39;alice&#39;" in page.text, path
        assert page.headers["content-type"].startswith("text/html")
    token = csrf_of(globex.get("/ui"))
    forged = globex.post("/ui/users/alice/delete", data={"csrf_token": token, "confirm": "alice"})
    assert forged.status_code == 404
    pref = stack["api"]["acme"].get("/v1/users/alice/preferences").json()["items"][0]
    resp = globex.patch(f"/v1/users/alice/preferences/{pref['id']}", json={"text": "mine"},
                        headers={"X-CSRF-Token": token})
    assert resp.status_code == 404 and error(resp)["message"] == "unknown user 'alice'"
    assert globex.get("/v1/users/alice/export").status_code == 404
    assert stack["api"]["acme"].get("/v1/users/alice/preferences").json()["stats"]["edits"] == 3  # untouched
    assert globex.get("/ui/users/bob").status_code == 200


def test_the_buttons_json_routes_take_the_session_with_its_csrf_token(stack):
    acme = session_client(stack["url"], stack["keys"]["acme"])
    token = csrf_of(acme.get("/ui/users/alice"))
    pref = acme.get("/v1/users/alice/preferences").json()["items"][0]  # a GET needs no token
    path = f"/v1/users/alice/preferences/{pref['id']}"
    missing = acme.patch(path, json={"text": "x"})
    assert missing.status_code == 403 and error(missing) == {
        "message": "missing or wrong CSRF token: reload the page and try again", "type": "permission_error",
        "code": "csrf_failed"}
    assert acme.patch(path, json={"text": "x"}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    cross = acme.patch(path, json={"text": "x"}, headers={"X-CSRF-Token": token, "Origin": "http://evil.test"})
    assert cross.status_code == 403
    cross_site = acme.delete(path, headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    ok = acme.patch(path, json={"text": "Short sentences, friendly tone."},
                    headers={"X-CSRF-Token": token, "Origin": stack["url"]})
    assert ok.status_code == 200 and ok.json()["text"] == "Short sentences, friendly tone."
    assert stack["api"]["acme"].get("/v1/users/alice/preferences").json()["items"][0]["user_edited"] is True
    assert httpx.patch(stack["url"] + path, json={"text": "x"}, headers={"X-CSRF-Token": token}).status_code == 401


def test_a_hard_delete_needs_the_confirmation_step_and_a_token(stack):
    seed(stack["api"]["acme"], "dave", [" Thanks!"])
    acme = session_client(stack["url"], stack["keys"]["acme"])
    confirm = acme.get("/ui/users/dave/delete")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
    token = csrf_of(confirm)
    assert acme.post("/ui/users/dave/delete", data={"confirm": "dave"}).status_code == 403
    mistyped = acme.post("/ui/users/dave/delete", data={"csrf_token": token, "confirm": "dav"})
    assert mistyped.status_code == 400 and "the confirmation does not match" in mistyped.text
    assert stack["api"]["acme"].get("/v1/users/dave/preferences").status_code == 200  # still there
    done = acme.post("/ui/users/dave/delete", data={"csrf_token": token, "confirm": "dave"})
    assert done.status_code == 303 and done.headers["location"] == "/ui"
    listing = acme.get("/ui")
    assert re.search(r'<p class="flash" role="status">Deleted dave \([^)]*1 edits[^)]*\)\.</p>', listing.text)
    assert "/ui/users/dave" not in listing.text
    assert stack["api"]["acme"].get("/v1/users/dave/preferences").status_code == 404
    assert acme.get("/ui/users/dave").status_code == 404


def _copy(client: httpx.Client) -> httpx.Client:
    """Another client holding the same cookies: a copy of the session cookie taken now (what an attacker keeps)."""
    copy = httpx.Client(base_url=str(client.base_url), timeout=30)
    copy.cookies.set("redline_session", client.cookies["redline_session"])
    return copy


def test_logging_out_ends_the_session_for_every_copy_of_the_cookie(stack):
    """Issue 25: a cookie captured before POST /ui/logout opened /ui and GET /v1/users/{user}/export for 12 h; the
    session now ends on the server, so the copy opens nothing, while another session of the same key goes on."""
    key = create_key(stack["data"], "temp-logout")
    seed(httpx.Client(base_url=stack["url"], headers={"Authorization": f"Bearer {key}"}), "erin", [" Thanks!"])
    first, other = session_client(stack["url"], key), session_client(stack["url"], key)
    assert first.get("/ui/users/erin").status_code == 200
    captured = _copy(first)
    assert captured.get("/v1/users/erin/export").status_code == 200  # the copy works while the session lasts
    out = first.post("/ui/logout", data={"csrf_token": csrf_of(first.get("/ui"))})
    assert out.status_code == 303 and first.get("/ui").status_code == 303
    assert captured.get("/ui").headers["location"] == "/ui/login?next=%2Fui"
    assert captured.get("/ui/users/erin").status_code == 303
    refused = captured.get("/v1/users/erin/export")
    assert refused.status_code == 401 and error(refused)["code"] == "missing_api_key"
    assert other.get("/ui/users/erin").status_code == 200  # logging out ends that session, not the key's others


def test_revoking_the_key_ends_its_sessions(stack):
    key = create_key(stack["data"], "temp")
    stack["api"]["temp"] = api = httpx.Client(base_url=stack["url"], headers={"Authorization": f"Bearer {key}"})
    seed(api, "erin", [" Thanks!"])
    first, second = session_client(stack["url"], key), session_client(stack["url"], key)
    assert first.get("/ui/users/erin").status_code == 200
    captured = _copy(second)
    listed = subprocess.run([sys.executable, "-m", "redline.cli", "--data-dir", str(stack["data"]), "--json", "keys",
                             "list", "--tenant", "temp"], cwd=REPO, capture_output=True, text=True, check=True)
    key_id = json.loads(listed.stdout)["keys"][0]["id"]
    subprocess.run([sys.executable, "-m", "redline.cli", "--data-dir", str(stack["data"]), "keys", "revoke",
                    str(key_id)], cwd=REPO, capture_output=True, check=True)
    assert second.get("/ui/users/erin").headers["location"] == "/ui/login?next=%2Fui%2Fusers%2Ferin"
    assert second.get("/v1/users/erin/preferences").status_code == 401
    assert first.get("/v1/users/erin/export").status_code == 401 and captured.get("/ui").status_code == 303
    with sqlite3.connect(stack["data"] / "redline.db") as db:
        assert db.execute("SELECT COUNT(*) FROM ui_sessions WHERE key_id = ?", (key_id,)).fetchone()[0] == 0


def _cookie_flags(url: str, key: str, **headers: str) -> list[str]:
    """The attributes of the session cookie set by the login form and by logging in, sent with ``headers``."""
    form = httpx.get(url + "/ui/login", headers=headers)
    cookie = form.headers["set-cookie"].split(";")[0]  # sent back by hand: httpx keeps a Secure cookie off HTTP
    login = httpx.post(url + "/ui/login", data={"key": key, "csrf_token": csrf_of(form)},
                       headers={**headers, "Cookie": cookie})
    assert login.status_code == 303, login.text
    return [{part.strip().lower() for part in resp.headers["set-cookie"].split(";")[1:]} for resp in (form, login)]


def test_the_cookie_is_secure_over_https_as_a_trusted_proxy_says_and_when_configured(stack, tmp_path):
    """Issue 25: the cookie never got Secure, even behind a TLS proxy. X-Forwarded-Proto is believed only with
    REDLINE_TRUST_PROXY_HEADERS (off by default: any client could send it); REDLINE_SECURE_COOKIES always sets it."""
    key = stack["keys"]["acme"]
    for flags in _cookie_flags(stack["url"], key, **{"X-Forwarded-Proto": "https"}):  # not trusted by default
        assert "secure" not in flags and {"httponly", "samesite=strict"} <= flags
    keys = {"acme": create_key(tmp_path / "proxy", "acme"), "always": create_key(tmp_path / "always", "acme")}
    proxied = scripted_server(tmp_path / "proxy", REDLINE_TRUST_PROXY_HEADERS="true").wait_ready()
    always = scripted_server(tmp_path / "always", REDLINE_SECURE_COOKIES="true").wait_ready()
    try:
        for flags in _cookie_flags(proxied.url, keys["acme"], **{"X-Forwarded-Proto": "https"}):
            assert {"secure", "httponly", "samesite=strict"} <= flags
        for flags in _cookie_flags(proxied.url, keys["acme"], **{"X-Forwarded-Proto": "http"}):
            assert "secure" not in flags
        for flags in _cookie_flags(always.url, keys["always"]):
            assert {"secure", "httponly", "samesite=strict"} <= flags
    finally:
        proxied.stop()
        always.stop()


def test_bad_input_on_a_page_is_an_error_page(stack):
    acme = session_client(stack["url"], stack["keys"]["acme"])
    bad_user = acme.get("/ui/users/no%20spaces")
    assert bad_user.status_code == 422 and bad_user.headers["content-type"].startswith("text/html")
    assert acme.get("/ui?window=0").status_code == 422
    assert acme.get("/ui/nothing-here").status_code == 404


def test_without_auth_the_pages_act_in_the_default_tenant(tmp_path):
    server = scripted_server(tmp_path, REDLINE_AUTH="false").wait_ready()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        seed(client, "frank", [" Thanks!"])
        assert client.get("/ui/login").headers["location"] == "/ui"
        page = client.get("/ui")
        assert page.status_code == 200 and 'href="/ui/users/frank"' in page.text and "Log out" not in page.text
        assert client.post("/ui/users/frank/delete", data={"confirm": "frank"}).status_code == 403  # still CSRF
        token = csrf_of(client.get("/ui/users/frank"))
        assert client.post("/ui/users/frank/delete", data={"confirm": "frank", "csrf_token": token}).status_code == 303
        assert client.get("/v1/users").json()["users"] == []
    finally:
        server.stop()
