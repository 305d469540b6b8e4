"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from redline.agent.types import STRATEGIES, TASKS, USER_PATTERN

__all__ = ["RequestBody", "GenerateRequest", "GenerateResponse", "EditRequest", "EditResponse", "InteractionResponse",
           "PreferencePatch", "PreferenceItem", "PreferencesResponse", "UserSummary", "UsersResponse",
           "DeleteUserResponse", "LearningRetryResponse", "ChatRequest", "ModelList", "ErrorResponse", "USER_PATTERN",
           "Usage", "AppliedRule", "RuleItem", "RulePatch", "state_server_limits", "MAX_SAFE_INTEGER"]

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

# What the server enforces on strings, stated in the OpenAPI schema (the same patterns in ECMA-262 and Python
# regex). Every string of a body: no control character but tab, LF, VT, FF, CR (``api.bodies``, a 400). A text
# (context, edit, preference): that, and at least one character that is not whitespace (the agent's "is empty",
# a 400), and at most REDLINE_MAX_TEXT_CHARS characters (``state_server_limits`` writes the number in). The
# server keeps its 400s, which name the field, character and position, rather than pydantic's 422 "should match
# pattern": the schema says what is refused, the answer says where.
_ALLOWED = r"[^\x00-\x08\x0e-\x1f\x7f]"
_WHITESPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # str.isspace()
PLAIN_PATTERN = f"^{_ALLOWED}*$"
TEXT_PATTERN = f"^{_ALLOWED}*[^\\x00-\\x08\\x0e-\\x1f\\x7f{_WHITESPACE}]{_ALLOWED}*$"
_LIMIT = "x-redline-limit"  # replaced by the server's setting in the schema it serves


def _integral(value: Any) -> Any:
    """A JSON number with no fraction (``11.0``) as the integer it is: JSON Schema's ``integer`` includes it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


PlainStr = Annotated[str, WithJsonSchema({"type": "string", "pattern": PLAIN_PATTERN})]
Text = Annotated[str, WithJsonSchema({"type": "string", "minLength": 1, "pattern": TEXT_PATTERN,
                                      _LIMIT: {"maxLength": "max_text_chars"}})]
# The largest integer every JSON reader holds exactly (an IEEE 754 double, RFC 8259 §6): seeds and ids stay within
# it, so a client and a schema validator that read numbers as doubles agree with the server on what is in range.
MAX_SAFE_INTEGER = 2**53 - 1


def integer(ge: int, le: int, **schema: Any) -> Any:
    """An integer in [ge, le] that also takes its JSON spelling with a zero fraction (never a boolean or a string,
    in lax models too), with exact bounds in the schema (pydantic's own writes them as floats)."""
    return Annotated[int, Field(ge=ge, le=le, strict=True), BeforeValidator(_integral),
                     WithJsonSchema({"type": "integer", "minimum": ge, "maximum": le, **schema})]


Tokens = integer(1, 8192, **{_LIMIT: {"maximum": "max_request_tokens"}})
Seed = integer(0, MAX_SAFE_INTEGER)
# Unknown fields the chat route ignores: any JSON whose strings (and keys) follow the rule above.
ANY_JSON = {"$ref": "#/components/schemas/PlainJson"}
PLAIN_JSON = {"anyOf": [{"type": "null"}, {"type": "boolean"}, {"type": "number"},
                        {"type": "string", "pattern": PLAIN_PATTERN}, {"type": "array", "items": ANY_JSON},
                        {"type": "object", "additionalProperties": ANY_JSON,
                         "propertyNames": {"pattern": PLAIN_PATTERN}}],
              "description": "Any JSON value whose strings hold no control character but tab, LF, VT, FF, CR."}


def _open_object(schema: dict) -> None:
    """The schema of a model that accepts unknown fields: they may be any JSON that follows the string rule."""
    schema["additionalProperties"] = ANY_JSON
    schema["propertyNames"] = {"pattern": PLAIN_PATTERN}


def state_server_limits(openapi: dict, settings) -> dict:
    """``openapi`` (FastAPI's schema, changed in place) with this server's limits written in where the models
    mark them (the longest text, the largest ``max_tokens``), and ``PlainJson`` defined."""
    pending = [openapi]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, setting in node.pop(_LIMIT, {}).items():
                node[key] = getattr(settings, setting)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    openapi.setdefault("components", {}).setdefault("schemas", {})["PlainJson"] = PLAIN_JSON
    return openapi


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
    context: Text = Field(description="The document, notes or message to respond to.")
    task: Task = Field("summarize", description="What to write.")
    strategy: Strategy = Field("greedy", description="Candidate plan: greedy (one text), best_of_n (the greedy target "
                          "draft and n-1 alternatives of the target preference) or rps (the greedy target draft and "
                          "one alternative per neighbourhood preference); the user's reward picks the answer. "
                          "Falls back to greedy before a reward is trained or before the user's first edit.")
    n: integer(1, 16) | None = Field(None, description="Candidates for best_of_n and rps (default: the server's "
                                     "REDLINE_REWARD_N).")
    max_tokens: Tokens | None = Field(None, description="Tokens per generated text (at most the server's "
                                      "REDLINE_MAX_REQUEST_TOKENS).")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature (0 = greedy).")
    seed: Seed | None = Field(None, description="Sampling seed.")
    rules: bool = Field(True, description="Apply the user's learned edit rules that are active here (false: the "
                        "text as generated). Off for everyone when the server runs with REDLINE_RULES=false.")
    use_preference: bool = Field(True, description="Prompt with the user's learned preference (false: no "
                                 "preference in the prompt; the edit rules still apply).")
    stream: bool = Field(False, description="Answer with server-sent events: `start` (the interaction id, the "
                         "preference, whether deltas follow), `delta` (text as it decodes), then `done` (the whole "
                         "response, as without streaming) or `error`. See the API docs for what cannot stream.")


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
    confidence: float | None = Field(None, description="The reward's probability that the user prefers its best "
                                     "candidate to the greedy draft (null when the greedy draft scored best).")
    kept_greedy: bool = Field(False, description="The greedy draft was kept because that probability was at or "
                                                 "below REDLINE_REWARD_MIN_CONFIDENCE.")
    user_pairs: int | None = Field(None, description="The user's pairs in their reward state.")


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

    @classmethod
    def of(cls, result) -> "GenerateResponse":
        """The response for one ``GenerateResult``."""
        return cls(interaction_id=result.interaction_id, user=result.user, task=result.task, text=result.text,
                   preference=result.preference, neighbours=result.neighbours, strategy=result.strategy,
                   candidates=result.candidates, selection=result.selection, model=result.model,
                   usage=Usage.of(result), timings_ms=result.timings_ms, applied_rules=result.applied_rules)


class EditRequest(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)

    edited_text: Text = Field(description="The text as the user kept it.")


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
    status: Literal["awaiting_edit", "pending", "running", "learned", "parked"] = Field(
        description="awaiting_edit: no edit posted yet; pending/running: queued for the background learner (after "
                    "a failed attempt: waiting out a back-off until retry_at); learned: done, exactly once; parked: "
                    "every attempt failed (error says why); kept, and retried when the generator answers again or "
                    "on command (POST /v1/learning/retry).")
    learned_at: str | None
    preference: LearnedPreference | None = Field(
        description="The preference stored from this edit; null when it taught none (or it was deleted since).")
    error: str | None = Field(description="Why the last attempt at learning failed, while the edit is not learned.")
    attempts: int = Field(description="Attempts at learning this edit so far (reset when it is retried).")
    retry_at: str | None = Field(description="When the next attempt may run, after a failed one (UTC, ISO 8601); "
                                             "null otherwise (and for a parked edit).")


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
                      "numbered, max_words, max_sentences, max_sentence_words or no_exclamation.")
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


class LearningRetryResponse(BaseModel):
    requeued: int = Field(description="Learning jobs of your tenant queued again at once (parked, or waiting out a "
                                      "back-off after a failed attempt), their attempts reset.")


class DeleteUserResponse(BaseModel):
    user: str
    deleted: bool = True
    removed: dict[str, int]
    reward_retrain_queued: bool = Field(False, description="The user had preference pairs: a learner retrains the "
                                                           "shared reward without them and removes older checkpoints.")


class ContentPart(RequestBody):
    model_config = ConfigDict(extra="allow", json_schema_extra=_open_object)

    type: PlainStr
    text: PlainStr | None = None


class ChatMessage(RequestBody):
    model_config = ConfigDict(extra="allow", json_schema_extra=_open_object)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: PlainStr | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(RequestBody):
    model_config = ConfigDict(extra="allow", json_schema_extra=_open_object)

    include_usage: StrictBool = False


def _chat_schema(schema: dict) -> None:
    _open_object(schema)
    schema["examples"] = [{"model": "redline", "user": "alice", "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Write a two-line note inviting the team to Friday's demo."}]}]
    # `user` is required (a 400 that says so, rather than a 422, when it is missing or null)
    schema["required"] = [*schema.get("required", []), "user"]
    schema["properties"]["user"] = {"type": "string", "pattern": USER_PATTERN, "title": "User",
                                    "description": "Whose preferences shape the reply: a user id within the tenant."}


class ChatRequest(RequestBody):
    """The OpenAI chat-completions request; unknown fields are accepted and ignored. The last message must be a
    user message with text (a 400 otherwise; a rule JSON Schema cannot state)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_chat_schema)

    model: PlainStr = "redline"
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation; the last message must be the "
                                        "user's, with text (it is the context).")
    user: UserId | None = Field(None, description="Required: whose preferences shape the reply.")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0, strict=True)] | None = None  # not "0.5", not false
    n: integer(1, 1) | None = Field(None, description="Only 1 is supported.")
    seed: Seed | None = None
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
