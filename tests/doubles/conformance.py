"""schemathesis's conformance checks as redline's tests and its outside checks run them (needs the dev extra).

The OpenAPI schema states what the server enforces (text patterns and lengths, the limits of this server's
settings, ``user`` required in a chat request), so every schemathesis check applies as it comes, but for two rules
JSON Schema cannot state. A chat request's *last* message must be the user's, with text (there is no keyword for
"the last item of an array"). And a rule's rewrite must suit the rule's kind (a phrase to delete has two words, a
limit is a number), which the stored rule decides, not the request. ``positive_data_acceptance`` counts either
answer as a schema-valid request rejected; ``positive_data_acceptance_but_state_rules`` is the same check with
exactly those answers let through (route, status and error message or code must all match), and stands in for it.

As a hooks module: ``PYTHONPATH=tests SCHEMATHESIS_HOOKS=doubles.conformance schemathesis run URL/openapi.json
--checks all --exclude-checks positive_data_acceptance``.
"""

from __future__ import annotations

import schemathesis
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

__all__ = ["LAST_MESSAGE_RULE", "positive_data_acceptance_but_state_rules",
           "negative_data_rejection_or_too_large", "EXCLUDED", "ADDED"]

LAST_MESSAGE_RULE = "the last message must be a non-empty user message"


def _error(response) -> dict:
    try:
        return response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {}


def _is_state_rule(response, case) -> bool:
    """The chat's last-message rule (400), or a rule rewrite the stored rule's kind cannot take (422 invalid_rule
    to a PATCH that carries a text)."""
    if case.operation.path == "/v1/chat/completions" and response.status_code == 400:
        return _error(response).get("message") == LAST_MESSAGE_RULE
    if case.operation.path == "/v1/users/{user}/rules/{rule_id}" and case.method.upper() == "PATCH":
        rewrite = isinstance(case.body, dict) and case.body.get("text") is not None
        return response.status_code == 422 and rewrite and _error(response).get("code") == "invalid_rule"
    return False


@schemathesis.check
def positive_data_acceptance_but_state_rules(ctx, response, case):
    """``positive_data_acceptance``, except the two refusals that depend on more than the request's shape (the
    chat's last message, a rule kind's rewrite)."""
    if _is_state_rule(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def negative_data_rejection_or_too_large(ctx, response, case):
    """``negative_data_rejection``, with ``413`` (the body is over the server's size limit) a rejection too."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


EXCLUDED = [positive_data_acceptance, negative_data_rejection]
ADDED = [positive_data_acceptance_but_state_rules, negative_data_rejection_or_too_large]
