"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic_core import PydanticCustomError

from redline.agent.types import STRATEGIES, TASKS, USER_PATTERN

__all__ = ["RequestBody", "GenerateRequest", "GenerateResponse", "EditRequest", "EditResponse", "InteractionResponse",
           "PreferencePatch", "PreferenceItem", "PreferencesResponse", "UserSummary", "UsersResponse",
           "DeleteUserResponse", "ChatRequest", "ModelList", "ErrorResponse", "USER_PATTERN", "Usage", "AppliedRule",
           "RuleItem", "RulePatch"]

Task = Literal[TASKS]  # OpenAPI lists the values; anything else is a 422 before the agent is called
Strategy = Literal[STRATEGIES]


def reject_lone_surrogates(value: Any) -> Any:
    """``value`` unchanged when every string in it (at any depth, dict keys included) encodes as UTF-8.

    JSON may spell a lone surrogate (``"\\ud800"``) that Python decodes into a ``str`` no response, log line or
    SQLite text can encode; such a value raises the ``lone_surrogate`` validation error (a 422 that names the
    field). Iterative, so a deeply nested unknown field cannot exhaust the stack.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise PydanticCustomError("lone_surrogate", "text must be valid UTF-8 (no lone surrogates)") from None
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return value


Encodable = Annotated[Any, AfterValidator(reject_lone_surrogates)]


class RequestBody(BaseModel):
    """The base of every request body and of each part of one: every field, and every unknown field a model
    allows, is checked by ``reject_lone_surrogates`` while the body is validated, so a string the server
    could not encode is a 422 before any route does work (not a 500 after it)."""

    __pydantic_extra__: dict[str, Encodable] = Field(init=False)

    @field_validator("*")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        return reject_lone_surrogates(value)


UserId = Annotated[str, Field(pattern=USER_PATTERN, description="User id within the tenant: 1-128 of "
                                                               "letters, digits and . _ @ : + -")]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class GenerateRequest(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    user: UserId
    context: str = Field(description="The document, notes or message to respond to.")
    task: Task = Field("summarize", description="What to write.")
    strategy: Strategy = Field("greedy", description="Candidate plan: greedy (one text), best_of_n (the greedy target "
                          "draft and n-1 alternatives of the target preference) or rps (the greedy target draft and "
                          "one alternative per neighbourhood preference); the user's reward picks the answer. "
                          "Falls back to greedy before a reward is trained or before the user's first edit.")
    n: int | None = Field(None, ge=1, le=16, description="Candidates for best_of_n and rps (default: the "
                          "server's REDLINE_REWARD_N).")
    max_tokens: int | None = Field(None, ge=1, le=8192, description="Tokens per generated text.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature (0 = greedy).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Sampling seed.")
    rules: bool = Field(True, description="Apply the user's learned edit rules that are active here (false: the "
                        "text as generated). Off for everyone when the server runs with REDLINE_RULES=false.")
    use_preference: bool = Field(True, description="Prompt with the user's learned preference (false: no "
                                 "preference in the prompt; the edit rules still apply).")


class Neighbour(BaseModel):
    preference_id: int
    interaction_id: str | None
    preference: str
    similarity: float


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, result) -> "Usage":
        """The generator tokens one ``GenerateResult`` spent."""
        return cls(prompt_tokens=result.tokens_in, completion_tokens=result.tokens_out,
                   total_tokens=result.tokens_in + result.tokens_out)


class Candidate(BaseModel):
    text: str
    preference: str | None = Field(description="The preference whose prompt produced this candidate.")
    source: str = Field(description="target (the aggregated preference) or neighbour:<preference id>.")
    kind: str = Field(description="greedy (the target draft at the request's temperature), sample (an independent "
                      "draft at the candidate temperature) or revision (the greedy draft revised towards its "
                      "`preference`).")
    score: float | None = Field(description="Mean probability, under the user's reward, of beating the "
                                "other candidates; null when there was nothing to choose from.")
    reward: float | None = Field(None, description="The user's reward of this candidate relative to the greedy draft.")
    chosen: bool
    raw_text: str | None = Field(None, description="The text as generated, when the user's edit rules changed it.")
    applied_rules: list[int] = Field([], description="Ids of the edit rules that changed this candidate.")


class AppliedRule(BaseModel):
    id: int
    kind: str
    description: str = Field(description="What the rule does, in plain words.")


class Selection(BaseModel):
    mode: str = Field(description="samples or revisions: how the alternatives to the greedy draft were made.")
    chosen: int = Field(description="Index of the chosen candidate (0 = the greedy target draft).")
    differs_from_greedy: bool = Field(description="Whether the answer's text differs from the greedy target draft.")
    distinct: int = Field(description="Distinct candidate texts.")
    candidate_temperature: float
    seed: int | None = Field(description="Sampling seed of the alternatives.")


class GenerateResponse(BaseModel):
    interaction_id: str
    user: str
    task: Task
    text: str
    preference: str | None = Field(description="The preference the generator was prompted with.")
    neighbours: list[Neighbour] = Field(description="Past contexts it came from, most similar first.")
    strategy: Strategy
    candidates: list[Candidate] = Field(description="Every candidate with its score; one for greedy.")
    selection: Selection | None = Field(None, description="The choice among candidates; null with one candidate.")
    model: str
    usage: Usage
    timings_ms: dict[str, float]
    applied_rules: list[AppliedRule] = Field(description="The user's edit rules that changed the text (empty when "
                                             "none did, or rules are off).")


class EditRequest(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    edited_text: str = Field(description="The text as the user kept it.")


class EditResponse(BaseModel):
    interaction_id: str
    status: Literal["accepted"] = "accepted"
    cost: int = Field(description="Word-level Levenshtein distance between the draft and the edit.")
    is_edit: bool = Field(description="Whether the cost is above delta (otherwise it counts as accepted as is).")
    created: bool = Field(description="False when the same text had already been submitted.")


class EditView(BaseModel):
    edited_text: str
    cost: int
    is_edit: bool
    created_at: str


class LearnedPreference(BaseModel):
    id: int
    text: str
    kind: str | None


class Learning(BaseModel):
    status: Literal["awaiting_edit", "pending", "running", "learned", "failed"] = Field(
        description="awaiting_edit: no edit posted yet; pending/running: queued for the background learner; "
                    "learned: done, exactly once; failed: dropped (e.g. the user was deleted meanwhile).")
    learned_at: str | None
    preference: LearnedPreference | None = Field(
        description="The preference stored from this edit; null when it taught none (or it was deleted since).")
    error: str | None = Field(description="Why learning failed, when it did.")


class InteractionResponse(BaseModel):
    interaction_id: str
    user: str
    task: Task
    text: str = Field(description="The text generated (the draft the user edits).")
    preference: str | None = Field(description="The preference the generator was prompted with.")
    strategy: Strategy
    model: str
    created_at: str
    edit: EditView | None = Field(description="The text as the user kept it; null before it was posted.")
    learning: Learning


class PreferencePatch(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(description="The corrected preference, in the user's words.")


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
    weights: list[float] = Field(description="How much this user leans on each reward head (sums to 1).")
    steps: int = Field(description="Online steps taken (one per learned edit pair).")
    heads: int
    top_head: int
    entropy: float = Field(description="Normalised entropy of the weights: 1 = no lean, 0 = one head.")
    departures: list[Departure] = Field([], description="Where the user's edits depart most from everyone's.")


class RuleItem(BaseModel):
    id: int
    kind: str = Field(description="replace_phrase, delete_phrase, opening_line, closing_line, end_text, "
                      "remove_closing, bullets, numbered, max_words, max_sentences, max_sentence_words or "
                      "no_exclamation.")
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


class RulePatch(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool | None = Field(None, description="true: always apply; false: never; null: the evidence decides.")
    text: str | int | None = Field(None, description="New text for the rule (1-200 characters): the replacement, "
                                    "the phrase, the line, or the limit.")


class PreferencesResponse(BaseModel):
    user: str
    items: list[PreferenceItem]
    stats: PreferenceStats
    routing: RoutingState | None = Field(None, description="The user's routing over the shared reward heads; "
                                         "null before heads exist or before the user's first edit.")
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


class ContentPart(RequestBody):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(RequestBody):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(RequestBody):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


class ChatRequest(RequestBody):
    """The OpenAI chat-completions request; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = "redline"
    messages: list[ChatMessage] = Field(min_length=1)
    user: UserId | None = Field(None, description="Required: whose preferences shape the reply.")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    n: int | None = Field(None, ge=1, le=1, description="Only 1 is supported.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    rules: StrictBool = Field(True, description="redline's extension: apply the user's learned edit rules "
                                                "(default true).")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "redline"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


JSONDict = dict[str, Any]
