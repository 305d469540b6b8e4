"""The bodies of ``POST /v1/generate`` and of the OpenAI-compatible ``POST /v1/chat/completions`` and
``GET /v1/models``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from redline.agent.types import USER_PATTERN

from ._base import (
    PlainStr,
    RequestBody,
    Seed,
    Strategy,
    Task,
    Text,
    Tokens,
    UserId,
    _open_object,
    integer,
)

__all__ = ["GenerateRequest", "GenerateResponse", "Neighbour", "Usage", "Candidate", "AppliedRule", "Selection",
           "ChatRequest", "ChatMessage", "ContentPart", "StreamOptions", "ModelCard", "ModelList"]


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
    drafted_again: str | None = Field(None, description="Why the greedy draft written for the preference was "
                                      "thrown away and this one drafted without it: 'frame lines only', 'the "
                                      "preference written back', 'one phrase over and over' or 'nothing of the "
                                      "document'; null when it was not.")


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

