"""The inspector in a real browser: headless Chromium (Debian's package, driven by Playwright) logs in, opens a
user's page, edits a preference through its button, and the JSON route sees the change; a preference holding a
<script> shows as text and never runs. Saves a screenshot of the page."""

from __future__ import annotations

import httpx
import pytest

from doubles.browser import chromium_page, why_no_browser
from servers import create_key, scripted_server, wait_learned

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(why_no_browser() is not None, reason=f"no browser: {why_no_browser()}")]

CONTEXTS = ["The city council approved a budget raising transit spending by 12 percent and two new bus lines.",
            "A new library opens downtown with late hours and a maker space for teenagers.",
            "Researchers report that a small model follows style preferences when it is prompted with them."]
XSS = "<script>window.__owned = true</script>"


def test_editing_a_preference_in_the_browser_reaches_the_json_route(tmp_path):
    from playwright.sync_api import expect  # a dev dependency: imported once the skip above has not applied

    key = create_key(tmp_path / "data", "acme")
    server = scripted_server(tmp_path / "data").wait_ready()
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    try:
        for context, ending in zip(CONTEXTS, (" Thanks!", " Cheers.", " Bye.")):
            out = api.post("/v1/generate", json={"user": "alice", "context": context}).json()
            kept = out["text"].replace("Draft:", "Summary:") + ending
            api.post(f"/v1/interactions/{out['interaction_id']}/edit", json={"edited_text": kept})
        wait_learned(api, "alice", 3)
        items = api.get("/v1/users/alice/preferences").json()["items"]
        newest, oldest = items[0]["id"], items[-1]["id"]
        assert api.patch(f"/v1/users/alice/preferences/{oldest}", json={"text": XSS}).status_code == 200

        with chromium_page() as page:
            page.goto(server.url + "/ui/users/alice")
            page.fill("#key", key)  # no session yet: the login form first, then back to the page asked for
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/users/alice")
            assert page.locator(f"#pref-{oldest} .pref-text").inner_text() == XSS  # shown as text ...
            assert page.evaluate("window.__owned") is None  # ... never run
            assert page.locator("del").count() >= 3 and page.locator("ins").count() >= 3  # the word diffs

            article = page.locator(f"#pref-{newest}")
            article.get_by_role("button", name="Edit").click()
            article.locator("textarea").fill("Short sentences; end with a friendly sign-off.")
            article.get_by_role("button", name="Save").click()
            # expect() polls from Playwright's side: the page's CSP forbids evaluating a string in it
            expect(article.locator(".pref-text")).to_have_text("Short sentences; end with a friendly sign-off.")
            expect(page.locator("#status")).to_have_text("Preference saved; the next generation uses it.")
            page.screenshot(path=str(tmp_path / "ui-user.png"), full_page=True)

        item = api.get("/v1/users/alice/preferences").json()["items"][0]
        assert (item["id"], item["text"], item["user_edited"]) == (
            newest, "Short sentences; end with a friendly sign-off.", True)
        assert (tmp_path / "ui-user.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        api.close()
        server.stop()
