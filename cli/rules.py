"""``redline rules list|enable|disable|auto|edit|delete``: a user's learned edit rules, read and changed."""

from __future__ import annotations

import click

from ._common import State, emit, json_option, pass_state

__all__ = ["rules", "rule_line"]


def rule_line(rule: dict) -> str:
    """One rule as a line: id, state, what it does, its evidence."""
    switch = {True: "on (by user)", False: "off (by user)", None: "active" if rule["active"] else "inactive"}
    origin = ", rewritten by user" if rule["origin"] == "user" else ""
    return (f"#{rule['id']} [{switch[rule['enabled']]}] {rule['description']} — {rule['support']} supporting, "
            f"{rule['contradictions']} contradicting edits (precision {rule['precision']:.2f}{origin})")


def _user_options(command):
    command = click.option("--tenant", default="default", show_default=True, help="Tenant the user belongs to.")(
        command)
    return click.option("--user", required=True, help="Whose rules.")(command)


@click.group("rules")
def rules():
    """A user's learned edit rules: the fixes they make again and again, made for them."""


@rules.command("list")
@_user_options
@json_option
@pass_state
def list_rules(state: State, user, tenant):
    """List USER's rules (active first) with their evidence and the edits that taught them."""
    found = state.agent.rules(user, tenant=tenant)
    lines = [f"{user}: {len(found)} rules, {sum(r['active'] for r in found)} active"]
    for rule in found:
        lines.append(rule_line(rule))
        if rule["taught_by"]:
            lines.append(f"    taught by: {', '.join(i[:8] for i in rule['taught_by'][:5])}"
                         + (f" (+{len(rule['taught_by']) - 5})" if len(rule["taught_by"]) > 5 else ""))
    emit({"user": user, "rules": found}, "\n".join(lines))


def _on_a_rule(name: str, *options, **attrs):
    """``redline rules NAME RULE_ID [OPTIONS] --user USER [--tenant T] [--json]``."""

    def decorate(function):
        for decorator in (pass_state, json_option, _user_options, *reversed(options),
                          click.argument("rule_id", type=int), rules.command(name, **attrs)):
            function = decorator(function)
        return function

    return decorate


def _switch(name: str, enabled: bool | None, help_text: str) -> click.Command:
    @_on_a_rule(name, help=help_text)
    def switch(state: State, rule_id, user, tenant):
        rule = state.agent.update_rule(user, rule_id, enabled=enabled, tenant=tenant)
        emit(rule, rule_line(rule))

    return switch


enable = _switch("enable", True, "Always apply rule RULE_ID, whatever its evidence.")
disable = _switch("disable", False, "Never apply rule RULE_ID.")
auto = _switch("auto", None, "Let rule RULE_ID's evidence decide again (undo enable/disable).")


@_on_a_rule("edit", click.option("--text", required=True,
                                 help="The new replacement, phrase, line or limit (1-200 characters)."))
def edit(state: State, rule_id, text, user, tenant):
    """Rewrite rule RULE_ID's text; it is counted again over the user's edits."""
    rule = state.agent.update_rule(user, rule_id, text=text, tenant=tenant)
    emit(rule, rule_line(rule))


@_on_a_rule("delete")
def delete(state: State, rule_id, user, tenant):
    """Forget rule RULE_ID and its evidence (later edits making the same fix teach it again)."""
    state.agent.delete_rule(user, rule_id, tenant=tenant)
    emit({"deleted": rule_id}, f"deleted rule {rule_id}")
