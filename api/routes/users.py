"""What redline learned about a user: read, correct, remove; export and hard delete."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from ..bodies import JsonRoute
from ..deps import AgentDep, TenantDep
from ..schemas import (
    MAX_SAFE_INTEGER,
    USER_PATTERN,
    DeleteUserResponse,
    PreferenceItem,
    PreferencePatch,
    PreferencesResponse,
    RuleItem,
    RulePatch,
    UsersResponse,
)
from ._common import errors

router = APIRouter(tags=["users"], route_class=JsonRoute)
User = Annotated[str, Path(pattern=USER_PATTERN, max_length=128, description="User id within your tenant.")]
PreferenceId = Annotated[int, Path(ge=1, le=MAX_SAFE_INTEGER)]
RuleId = Annotated[int, Path(ge=1, le=MAX_SAFE_INTEGER, description="A rule id from the user's `rules` list.")]


Window = Annotated[int, Query(ge=1, le=10_000, description="Edits compared in the mean costs (first vs last).")]


@router.get("/v1/users", response_model=UsersResponse, responses=errors())
def list_users(agent: AgentDep, tenant: TenantDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=2**31)] = 0, window: Window = 10) -> UsersResponse:
    """Your tenant's users, most recently active first, each with edits, preferences, last activity and the
    mean edit cost of their first vs last `window` edits (are their edits getting smaller?)."""
    data = agent.users(tenant=tenant, limit=limit, offset=offset, window=window)
    more = offset + len(data["users"]) < data["total"]
    return UsersResponse(**data, next_offset=offset + len(data["users"]) if more else None)


@router.get("/v1/users/{user}/preferences", response_model=PreferencesResponse, responses=errors(404))
def list_preferences(user: User, agent: AgentDep, tenant: TenantDep,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
                     window: Window = 10) -> PreferencesResponse:
    """The user's learned preferences, newest first, each with the context snippet, the draft → edit that
    taught it, its cost and dates; plus stats: edits, and mean cost over the first vs the last `window` edits;
    the routing state; and `rules`, the edit rules learned from the user's edits (all of them, active first)."""
    data = agent.preferences(user, tenant=tenant, limit=limit, offset=offset, window=window)
    more = offset + len(data["items"]) < data["stats"]["preferences"]
    return PreferencesResponse(**data, next_offset=offset + len(data["items"]) if more else None)


@router.patch("/v1/users/{user}/preferences/{preference_id}", response_model=PreferenceItem,
              responses=errors(404))
def update_preference(user: User, preference_id: PreferenceId, body: PreferencePatch, agent: AgentDep,
                      tenant: TenantDep) -> dict:
    """Correct a learned preference; the next generation already uses the new text."""
    return agent.update_preference(user, preference_id, body.text, tenant=tenant)


@router.delete("/v1/users/{user}/preferences/{preference_id}", status_code=204, responses=errors(404))
def delete_preference(user: User, preference_id: PreferenceId, agent: AgentDep, tenant: TenantDep) -> Response:
    """Remove a learned preference; it is no longer retrieved from the next generation on."""
    agent.delete_preference(user, preference_id, tenant=tenant)
    return Response(status_code=204)


@router.patch("/v1/users/{user}/rules/{rule_id}", response_model=RuleItem, responses=errors(404, 409))
def update_rule(user: User, rule_id: RuleId, body: RulePatch, agent: AgentDep, tenant: TenantDep) -> dict:
    """Switch an edit rule on or off (`enabled`: true, false, or null to let its evidence decide) and/or rewrite
    its `text` (the replacement, phrase, line or limit; 1-200 characters, else `422`). A rewritten rule is
    counted again over the user's edits. The next generation already uses the change."""
    changes = {"enabled": body.enabled} if "enabled" in body.model_fields_set else {}
    if body.text is not None:
        changes["text"] = str(body.text)
    return agent.update_rule(user, rule_id, tenant=tenant, **changes)


@router.delete("/v1/users/{user}/rules/{rule_id}", status_code=204, responses=errors(404))
def delete_rule(user: User, rule_id: RuleId, agent: AgentDep, tenant: TenantDep) -> Response:
    """Forget an edit rule and its evidence. Later edits that make the same fix teach it again; switch it
    off (`PATCH` with `enabled: false`) to keep it off."""
    agent.delete_rule(user, rule_id, tenant=tenant)
    return Response(status_code=204)


@router.get("/v1/users/{user}/export", response_model=dict[str, Any], responses=errors(404))
def export_user(user: User, agent: AgentDep, tenant: TenantDep) -> dict:
    """All of the user's data as JSON: interactions, edits, preferences, pairs, routing state, edit rules with
    their evidence."""
    return agent.export_user(user, tenant=tenant)


@router.delete("/v1/users/{user}", response_model=DeleteUserResponse, responses=errors(404))
def delete_user(user: User, agent: AgentDep, tenant: TenantDep) -> DeleteUserResponse:
    """Hard delete: every row of the user (interactions, edits, preferences and their vectors, pairs,
    routing state, edit rules and their evidence, queued jobs), at once, in every API process. When the user had
    preference pairs, a retraining of the shared reward without them is queued (`reward_retrain_queued`); a learner
    runs it within seconds and it removes every older checkpoint, which was trained on them."""
    removed = agent.delete_user(user, tenant=tenant)
    return DeleteUserResponse(user=user, removed=removed, reward_retrain_queued=bool(removed.get("pairs")))
