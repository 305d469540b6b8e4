"""API keys (store methods and the `redline keys` CLI) and the API's error body: fast, no models."""

import json

import pytest
from click.testing import CliRunner

from redline.api.errors import error_body
from redline.cli import cli
from redline.store import ApiKeys, NotFound, Store


def test_store_keeps_only_hashes_and_resolves_tenants(fresh_store: Store):
    key, row = fresh_store.keys.create("acme", "ci")
    assert key.startswith("rl-") and len(key) > 40 and row["prefix"] == key[:10] and row["tenant"] == "acme"
    stored = fresh_store._sql.db["api_keys"].get(row["id"])
    assert key not in json.dumps(stored) and stored["key_hash"] == ApiKeys.hash(key)
    assert fresh_store.keys.tenant(key) == "acme" and fresh_store.keys.tenant(key + "x") is None
    assert fresh_store.keys.count_active() == 1
    fresh_store.keys.revoke(row["id"])
    assert fresh_store.keys.tenant(key) is None and fresh_store.keys.count_active() == 0
    with pytest.raises(NotFound):
        fresh_store.keys.revoke(row["id"])


def test_keys_cli_create_list_revoke(tmp_path):
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path)]
    created = runner.invoke(cli, [*base, "keys", "create", "--tenant", "acme", "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("rl-")
    listed = runner.invoke(cli, [*base, "--json", "keys", "list"])
    rows = json.loads(listed.stdout)["keys"]
    assert [(r["id"], r["tenant"], r["name"], r["revoked_at"]) for r in rows] == [(1, "acme", "ci", None)]
    assert key not in listed.stdout
    assert runner.invoke(cli, [*base, "keys", "revoke", "1"]).stdout.startswith("revoked key 1 (acme, ")
    again = runner.invoke(cli, [*base, "keys", "revoke", "1"], standalone_mode=False)
    assert again.exit_code != 0 and "no active API key with id 1" in str(again.exception)
    bad = runner.invoke(cli, [*base, "keys", "create", "--tenant", "a b"], standalone_mode=False)
    assert str(bad.exception) == ("tenant must be 1-64 characters: letters, digits and . _ - "
                                  "(starting with a letter or digit)")


def test_serve_and_keys_have_help():
    runner = CliRunner()
    for args in (["serve", "--help"], ["keys", "--help"], ["keys", "create", "--help"], ["keys", "list", "--help"],
                 ["keys", "revoke", "--help"]):
        out = runner.invoke(cli, args)
        assert out.exit_code == 0 and len(out.stdout) > 100, args


def test_error_body_shape():
    assert error_body(404, "unknown user 'x'") == {
        "error": {"message": "unknown user 'x'", "type": "not_found_error", "code": "not_found"}}
    assert error_body(503, "down", "generator_unavailable")["error"]["type"] == "service_unavailable_error"
    assert error_body(500, "internal error")["error"] == {"message": "internal error", "type": "server_error",
                                                         "code": "internal_error"}
