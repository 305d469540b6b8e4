"""schemathesis's conformance checks as redline's tests and its outside checks run them (needs the dev extra).

The OpenAPI schema states what the server enforces (text patterns and lengths, the limits of this server's
settings, ``user`` required in a chat request), so every schemathesis check applies as it comes, but for one rule
JSON Schema cannot state: a chat request's *last* message must be the user's, with text (there is no keyword for
"the last item of an array"). ``positive_data_acceptance`` counts that ``400`` as a schema-valid request
rejected; ``positive_data_acceptance_but_the_last_message`` is the same check with exactly that answer let through
(the status, the route and the error message must all match), and stands in for it.

As a hooks module: ``SCHEMATHESIS_HOOKS=redline.testing.conformance schemathesis run URL/openapi.json --checks all
--exclude-checks positive_data_acceptance``.
"""

from __future__ import annotations

import schemathesis
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

__all__ = ["LAST_MESSAGE_RULE", "positive_data_acceptance_but_the_last_message",
           "negative_data_rejection_or_too_large", "EXCLUDED", "ADDED"]

LAST_MESSAGE_RULE = "the last message must be a non-empty user message"


def _is_last_message_rule(response, case) -> bool:
    if case.operation.path != "/v1/chat/completions" or response.status_code != 400:
        return False
    try:
        return response.json()["error"]["message"] == LAST_MESSAGE_RULE
    except (ValueError, KeyError, TypeError):
        return False


@schemathesis.check
def positive_data_acceptance_but_the_last_message(ctx, response, case):
    """``positive_data_acceptance``, except a chat request refused because its last message is not a user
    message with text (the one rule the schema cannot state)."""
    if _is_last_message_rule(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def negative_data_rejection_or_too_large(ctx, response, case):
    """``negative_data_rejection``, with ``413`` (the body is over the server's size limit) a rejection too."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


EXCLUDED = [positive_data_acceptance, negative_data_rejection]
ADDED = [positive_data_acceptance_but_the_last_message, negative_data_rejection_or_too_large]
