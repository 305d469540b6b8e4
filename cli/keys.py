"""``redline keys create|list|revoke``: API keys, each bound to a tenant; only their hashes are stored."""

from __future__ import annotations

import click

from ._common import State, emit, json_option, pass_state

__all__ = ["keys"]


@click.group("keys")
def keys():
    """Manage API keys (each bound to one tenant; users live inside tenants)."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant the key acts in: 1-64 letters, digits, . _ -")
@click.option("--name", default="", help="A label to recognise the key by.")
@json_option
@pass_state
def create(state: State, tenant, name):
    """Create a key and print it. It is shown once; only its hash is stored."""
    key, row = state.agent.keys.create(tenant, name)
    emit({**row, "key": key}, key)
    if not state.as_json:
        click.echo(f"(key {row['id']} for tenant {tenant}; shown once, store it now)", err=True)


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@json_option
@pass_state
def list_keys(state: State, tenant):
    """List keys: id, tenant, name, prefix, created and revoked dates (never the keys)."""
    rows = state.agent.keys.list(tenant=tenant)
    lines = ["\t".join([str(r["id"]), r["tenant"], r["prefix"] + "…", r["name"] or "-", r["created_at"]]
                       + ([f"revoked {r['revoked_at']}"] if r["revoked_at"] else [])) for r in rows]
    emit({"keys": rows}, "\n".join(lines) or "no API keys")


@keys.command("revoke")
@click.argument("key_id", type=int)
@json_option
@pass_state
def revoke(state: State, key_id):
    """Revoke key KEY_ID (from `redline keys list`); requests with it get 401 from then on."""
    row = state.agent.keys.revoke(key_id)
    emit(row, f"revoked key {key_id} ({row['tenant']}, {row['prefix']}…)")
