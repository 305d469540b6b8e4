"""The bodies of what redline learned about a user: ``/v1/users`` (the tenant's users), their preferences with
stats and routing (their reward state), their edit rules, corrections, and a hard delete's receipt."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ._base import MAX_SAFE_INTEGER, TEXT_PATTERN, RequestBody, Text, integer

__all__ = ["PreferencePatch", "PreferenceItem", "PreferenceStats", "Departure", "RoutingState", "RuleItem",
           "RulePatch", "PreferencesResponse", "UserSummary", "UsersResponse", "DeleteUserResponse"]


class PreferencePatch(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: Text = Field(description="The corrected preference, in the user's words.")


class PreferenceItem(BaseModel):
    id: int
    text: str
    kind: str | None
    interaction_id: str | None
    task: str | None = None
    context_snippet: str = Field(description="Start of the context this preference was learned on.")
    draft: str | None = None
    edited_text: str | None = None
    cost: int | None = None
    user_edited: bool
    created_at: str
    updated_at: str | None = None


class PreferenceStats(BaseModel):
    edits: int
    preferences: int
    mean_cost_first: float | None = Field(description="Mean edit cost of the first `window` edits.")
    mean_cost_last: float | None = Field(description="Mean edit cost of the last `window` edits.")
    window: int


class Departure(BaseModel):
    feature: str = Field(description="An edit feature (policies.EditFeatures.names), e.g. log_len, d_list.")
    user: float = Field(description="The user's mean edit in that feature (shrunk towards their heads).")
    population: float = Field(description="Everyone's mean edit in that feature.")


class RoutingState(BaseModel):
    """The user's reward state as the API shows it: "routing" is how the user's reward is routed over the shared
    reward heads (MiCRo stage 2), learned online from their own edits (the store and the agent call it the reward
    state)."""

    weights: list[float] = Field(description="How much this user leans on each reward head (sums to 1).")
    steps: int = Field(description="Online steps taken (one per learned edit pair).")
    heads: int
    top_head: int
    entropy: float = Field(description="Normalised entropy of the weights: 1 = no lean, 0 = one head.")
    departures: list[Departure] = Field([], description="Where the user's edits depart most from everyone's.")


class RuleItem(BaseModel):
    id: int
    kind: str = Field(description="replace_phrase, delete_phrase, opening_line, opening_template (a heading or "
                      "a 'TL;DR:' line made from each text), closing_line, end_text, remove_closing, bullets, "
                      "numbered, question_answer, max_words, max_sentences, max_sentence_words or no_exclamation.")
    params: dict[str, Any]
    text: str | None = Field(description="The part a user may rewrite (the replacement, phrase, line or limit); "
                             "null for kinds without one.")
    description: str = Field(description="What the rule does, in plain words.")
    support: int = Field(description="The user's edits that offered the chance and made this fix.")
    contradictions: int = Field(description="The user's edits that offered the chance and left it.")
    precision: float = Field(description="support / (support + contradictions) over the user's edits.")
    active: bool = Field(description="Applied (where no neighbouring context contradicts it): the user switched "
                         "it on, or enough support at enough precision.")
    enabled: bool | None = Field(description="The user's switch: true/false wins over the evidence; null: the "
                                 "evidence decides.")
    origin: Literal["mined", "user"] = Field(description="mined from edits, or rewritten by the user.")
    taught_by: list[str] = Field(description="Interaction ids whose edits supported it, newest first.")
    first_seen: str | None
    last_seen: str | None
    created_at: str
    updated_at: str


RuleText = Annotated[str, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200,
                                          "pattern": TEXT_PATTERN})]


class RulePatch(RequestBody):
    # Something to change: `enabled` (even null), or a `text` that is not null.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": [
        {"required": ["enabled"]}, {"required": ["text"], "properties": {"text": {"not": {"type": "null"}}}}]})

    enabled: bool | None = Field(None, description="true: always apply; false: never; null: the evidence decides.")
    text: RuleText | integer(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | None = Field(
        None, description="New text for the rule (1-200 characters): the replacement, the phrase, the line, or the "
                          "limit.")


class PreferencesResponse(BaseModel):
    user: str
    items: list[PreferenceItem]
    stats: PreferenceStats
    routing: RoutingState | None = Field(None, description="The user's routing over the shared reward heads (their "
                                         "reward state: weights moved by each learned edit towards the heads that "
                                         "explain it); null before heads exist or before the user's first edit.")
    rules: list[RuleItem] = Field([], description="The edit rules learned from the user's edits, active first.")
    limit: int
    offset: int
    next_offset: int | None


class UserSummary(BaseModel):
    user: str
    created_at: str
    last_activity: str = Field(description="When the user's newest interaction or edit happened.")
    edits: int
    preferences: int
    mean_cost_first: float | None = Field(description="Mean edit cost of the first `window` edits.")
    mean_cost_last: float | None = Field(description="Mean edit cost of the last `window` edits.")


class UsersResponse(BaseModel):
    users: list[UserSummary]
    total: int = Field(description="Users in your tenant.")
    limit: int
    offset: int
    window: int
    next_offset: int | None


class DeleteUserResponse(BaseModel):
    user: str
    deleted: bool = True
    removed: dict[str, int]
    reward_retrain_queued: bool = Field(False, description="The user had preference pairs: a learner retrains the "
                                                           "shared reward without them and removes older checkpoints.")

