"""Request and response bodies of the HTTP API (pydantic), one module per resource: ``generate`` (generation and
the OpenAI-compatible chat), ``interactions`` (edits and their learning), ``users`` (users, preferences, routing,
rules, hard delete); what they share is ``_base``. Routes import from here."""

from redline.agent.types import USER_PATTERN

from ._base import (
    MAX_SAFE_INTEGER,
    ErrorDetail,
    ErrorResponse,
    RequestBody,
    reject_lone_surrogates,
    state_server_limits,
)
from .generate import (
    AppliedRule,
    Candidate,
    ChatMessage,
    ChatRequest,
    ContentPart,
    GenerateRequest,
    GenerateResponse,
    ModelCard,
    ModelList,
    Neighbour,
    Selection,
    StreamOptions,
    Usage,
)
from .interactions import (
    EditRequest,
    EditResponse,
    EditView,
    InteractionResponse,
    LearnedPreference,
    Learning,
    LearningRetryResponse,
)
from .users import (
    DeleteUserResponse,
    Departure,
    PreferenceItem,
    PreferencePatch,
    PreferencesResponse,
    PreferenceStats,
    RoutingState,
    RuleItem,
    RulePatch,
    UsersResponse,
    UserSummary,
)

__all__ = ["RequestBody", "GenerateRequest", "GenerateResponse", "EditRequest", "EditResponse", "InteractionResponse",
           "PreferencePatch", "PreferenceItem", "PreferencesResponse", "UserSummary", "UsersResponse",
           "DeleteUserResponse", "LearningRetryResponse", "ChatRequest", "ModelList", "ErrorResponse", "USER_PATTERN",
           "Usage", "AppliedRule", "RuleItem", "RulePatch", "state_server_limits", "MAX_SAFE_INTEGER",
           # the parts of bodies, for tests that check every model
           "ErrorDetail", "Neighbour", "Candidate", "Selection", "ChatMessage", "ContentPart", "StreamOptions",
           "ModelCard", "EditView", "LearnedPreference", "Learning", "PreferenceStats", "Departure", "RoutingState",
           "reject_lone_surrogates"]
