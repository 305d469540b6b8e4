"""The bodies of an interaction: ``POST /v1/interactions/{id}/edit`` (the user's kept text), ``GET
/v1/interactions/{id}`` (the draft, its edit and how its learning went), and ``POST /v1/learning/retry``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._base import RequestBody, Strategy, Task, Text

__all__ = ["EditRequest", "EditResponse", "EditView", "LearnedPreference", "Learning", "InteractionResponse",
           "LearningRetryResponse"]


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


class LearningRetryResponse(BaseModel):
    requeued: int = Field(description="Learning jobs of your tenant queued again at once (parked, or waiting out a "
                                      "back-off after a failed attempt), their attempts reset.")

